"""The webhook as a Django REST framework view (used when DRF is installed).

It answers like the plain view, byte for byte where it matters, and keeps the project's DRF
defaults out of the way of WhatsApp:
- no parsers: `request.data` is never touched, the raw bytes go to the signature check (DRF
  would parse the JSON, and a re-serialised body no longer matches Meta's signature);
- no authentication, permission or throttle classes: WhatsApp carries no session or token
  of the project (so no CSRF either: DRF enforces it only in SessionAuthentication), and a
  throttled webhook is retried by WhatsApp for days; the signature authenticates instead;
- JSON answers whatever `Accept` says (the client's content negotiation is ignored), and no
  versioning scheme of the project applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.http import HttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from whatsapp_api_integration.integrations.django.views import (
    handshake_response,
    health_response,
    webhook_answer,
)


class IgnoreClientContentNegotiation(BaseContentNegotiation):
    """WhatsApp's `Accept` header decides nothing: the first renderer (JSON) answers."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class _WhatsAppAPIView(APIView):
    authentication_classes: Sequence[Any] = ()
    permission_classes: Sequence[Any] = ()
    throttle_classes: Sequence[Any] = ()
    parser_classes: Sequence[Any] = ()
    renderer_classes: Sequence[Any] = (JSONRenderer,)
    content_negotiation_class: Any = IgnoreClientContentNegotiation
    versioning_class: Any = None

    def perform_authentication(self, request: Request) -> None:
        """Never evaluate `request.user`: nothing here needs it, and DRF's anonymous user
        needs `django.contrib.auth`, which a project may not install."""


class HealthAPIView(_WhatsAppAPIView):
    """`GET /webhooks/whatsapp/`: 200 while the process runs."""

    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return health_response(request._request)


class WebhookAPIView(_WhatsAppAPIView):
    """`GET|POST /webhooks/whatsapp/webhook` (CSRF-exempt, as every APIView)."""

    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return handshake_response(request._request)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        answer = webhook_answer(request._request)
        if isinstance(answer, HttpResponse):
            return answer
        return Response(answer.body, status=answer.status)
