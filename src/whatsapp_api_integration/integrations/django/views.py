"""The webhook as plain Django views; `drf.py` wraps the same functions in a DRF view.

The signature is an HMAC of the raw request bytes, so the body is read here as bytes and
handed to `web.intake.receive` untouched: no form or JSON parsing, no re-serialising.
It is read with `request.read`, not `request.body`, so MAX_BODY_BYTES (default 4 MiB) decides
what is too large rather than Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB): Meta batches up
to 3 MB in one POST, and a 400 there would be retried by WhatsApp for days.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from whatsapp_api_integration.core.signature import handshake_challenge
from whatsapp_api_integration.integrations.django import runtime
from whatsapp_api_integration.web.intake import Answer, receive, refuse_too_large

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import Gateway
    from whatsapp_api_integration.settings import Settings

log = logging.getLogger(__name__)


def _gateway() -> tuple[Settings, Gateway] | HttpResponse:
    """The process's gateway, or the answer to give when it cannot be built: 503, so
    WhatsApp retries once the operator has fixed the settings or the database."""
    from whatsapp_api_integration.settings import SettingsError

    try:
        return runtime.current()
    except SettingsError as error:
        log.error("WhatsApp webhook unavailable, the gateway's settings are invalid: %s", error)
        return JsonResponse({"error": "gateway misconfigured; see the server's log"}, status=503)
    except Exception as error:  # the store cannot be opened or migrated
        log.error("WhatsApp webhook unavailable, the store cannot be opened: %s", error)
        return JsonResponse({"error": "store unavailable, retry later"}, status=503)


def health_response(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def handshake_response(request: HttpRequest) -> HttpResponse:
    """Meta's GET handshake: `hub.challenge` as text/plain, or 403."""
    state = _gateway()
    if isinstance(state, HttpResponse):
        return state
    settings, _ = state
    challenge = handshake_challenge(request.GET, settings.wpp_verify_token)
    if challenge is None:
        log.warning("webhook handshake refused (wrong or missing hub.verify_token or challenge)")
        return HttpResponse("Forbidden", status=403, content_type="text/plain")
    log.info("webhook handshake accepted")
    return HttpResponse(challenge, content_type="text/plain")


def webhook_answer(request: HttpRequest) -> Answer | HttpResponse:
    """Read, authenticate and store one webhook POST: the Answer once stored (or refused),
    or a ready response when the gateway itself is unavailable."""
    state = _gateway()
    if isinstance(state, HttpResponse):
        return state
    settings, gateway = state
    headers = dict(request.headers.items())
    limit = settings.max_body_bytes
    body = read_body(request, limit)
    if body is None:
        declared = request.META.get("CONTENT_LENGTH")
        log.warning(
            "webhook body refused: %s bytes is over MAX_BODY_BYTES=%d", declared or "?", limit
        )
        return refuse_too_large(headers, limit, gateway)
    return receive(body, headers, settings, gateway)


def webhook_response(request: HttpRequest) -> HttpResponse:
    answer = webhook_answer(request)
    if isinstance(answer, HttpResponse):
        return answer
    return JsonResponse(answer.body, status=answer.status)


def read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it is over `limit` bytes (refused before reading when the
    declared Content-Length already says so)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    cached: Any = getattr(request, "_body", None)  # a middleware already read request.body
    body = bytes(cached) if cached is not None else request.read(limit + 1)
    return None if len(body) > limit else body


class HealthView(View):
    """`GET /webhooks/whatsapp/`: 200 while the process runs (the original channel had it)."""

    http_method_names = ("get", "head")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return health_response(request)


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    """`GET|POST /webhooks/whatsapp/webhook`, plain Django (used when DRF is not installed).

    CSRF-exempt: WhatsApp cannot send a CSRF token; the signature (or SERPRO's bearer)
    authenticates the POST instead.
    """

    http_method_names = ("get", "post")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return handshake_response(request)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return webhook_response(request)


class SandboxConversationView(View):
    """`GET <mount>/conversations/<contact>` in sandbox mode only (no provider credentials):
    what the contact sent and what the sandbox 'sent' back, oldest first, as the gateway's
    `/sandbox/conversations/<contact>`; so `whatsapp-gateway simulate --url` works against a
    Django project too. Loopback callers only, or anyone with ADMIN_TOKEN (DESIGN §12)."""

    http_method_names = ("get",)

    def get(self, request: HttpRequest, contact: str) -> HttpResponse:
        state = _gateway()
        if isinstance(state, HttpResponse):
            return state
        settings, gateway = state
        if not settings.sandbox:
            return JsonResponse(
                {"error": "not in sandbox mode: answers go to WhatsApp"}, status=404
            )
        if not _operator(request, settings.admin_token):
            return JsonResponse({"error": "loopback or ADMIN_TOKEN only"}, status=403)
        try:
            limit = int(request.GET.get("limit") or 50)
        except ValueError:
            limit = 50
        entries = gateway.conversation(contact, limit=max(1, min(limit, 500)))
        return JsonResponse({"contact": contact, "messages": entries})


def _operator(request: HttpRequest, admin_token: str | None) -> bool:
    from whatsapp_api_integration.web.operators import is_operator

    authorization = request.headers.get("Authorization")
    return is_operator(request.META.get("REMOTE_ADDR"), request.headers, authorization, admin_token)
