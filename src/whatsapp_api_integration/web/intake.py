"""The webhook (DESIGN §4): verify, store, answer; the bot and the sends happen later.

`receive` is framework-free (bytes and headers in, status and JSON out) so every host reuses
it: the Flask blueprint (`web.webhook`), the Rasa channel and the Django views. This module
imports no web framework, so a Django- or Rasa-only install does not need Flask.

Which check applies is decided by the envelope, and neither provider's check can be used to
skip the other's:
- a Cloud API body needs a valid `X-Hub-Signature-256` whenever `WPP_APP_SECRET` is set;
- a SERPRO body is taken only when SERPRO is configured, and then only with
  `Authorization: Bearer <SERPRO_WEBHOOK_TOKEN>` when that is set. A SERPRO body sent to a
  gateway without SERPRO credentials gets 400, not 401: no credential could make this
  deployment take it, so it is a body of the wrong kind, and the answer says so.
When the request cannot be authentic whatever its envelope turns out to be, it gets 401 before
its JSON is parsed, so unauthenticated callers cannot make us parse megabytes.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.core.inbound import (
    WebhookFormatError,
    detect_provider,
    load_json,
    parse_document,
)
from whatsapp_api_integration.core.signature import verify_bearer, verify_signature

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import Gateway
    from whatsapp_api_integration.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _is_store_unavailable(error: BaseException) -> bool:
    """The database cannot be reached now: WhatsApp should retry later (503)."""
    try:
        from sqlalchemy import exc
    except ImportError:  # pragma: no cover - the server extra always has SQLAlchemy
        return False
    return isinstance(
        error, (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)
    )


def receive(
    body: bytes, headers: Mapping[str, str], settings: Settings, gateway: Gateway
) -> Answer:
    """Authenticate, parse and store one webhook body; never raises for any body.

    `headers` may be any mapping; names are matched without regard to case.
    """
    try:
        answer = _authenticate_and_store(body, _lower_keys(headers), settings, gateway)
    except Exception as error:
        if _is_store_unavailable(error):
            log.error("webhook body not stored, the store is unavailable: %s", error)
            return Answer(503, {"error": "store unavailable, retry later"})
        # A bug met on this body. The body is kept for replay, and the answer is a 4xx:
        # WhatsApp retries it (it retries any non-200) but no 5xx ever comes from a payload.
        log.exception("webhook body could not be handled (kept as rejected)")
        answer = Answer(400, {"error": f"$: could not be handled ({type(error).__name__}); logged"})
    if answer.status != 200:
        record_rejection(body, headers, answer, gateway)
    return answer


def _authenticate_and_store(
    body: bytes, headers: Mapping[str, str], settings: Settings, gateway: Gateway
) -> Answer:
    app_secret = settings.wpp_app_secret
    signature = headers.get(SIGNATURE_HEADER.lower())
    signed_by_meta = bool(app_secret) and verify_signature(body, signature, app_secret or "")
    bearer = headers.get("authorization")
    serpro_token = settings.serpro_webhook_token
    serpro_authentic = settings.serpro_configured and (
        not serpro_token or _serpro_token_matches(bearer, serpro_token)
    )
    if app_secret and not signed_by_meta and not serpro_authentic:
        return _unauthorized(signature, bearer)

    try:
        document = load_json(body)
        provider = detect_provider(document)
        if provider == "serpro":
            if not settings.serpro_configured:
                return Answer(
                    400,
                    {
                        "error": "$: a SERPRO body, but this gateway has no SERPRO credentials "
                        "(SERPRO_CLIENT_ID, SERPRO_CLIENT_SECRET)"
                    },
                )
            if not serpro_authentic:
                # Which header SERPRO sends its jwtToken in is not documented: say which
                # headers came (names only), so an operator can see it in the log.
                log.warning(
                    "SERPRO body refused: %s Authorization header; headers sent: %s",
                    "wrong" if bearer else "no",
                    ", ".join(sorted(headers)),
                )
                return Answer(401, {"error": "missing or wrong bearer token"})
        elif app_secret and not signed_by_meta:
            return _unauthorized(signature, bearer)
        events = parse_document(document, provider)
    except WebhookFormatError as error:
        log.warning("malformed webhook body (%d bytes): %s", len(body), error)
        return Answer(400, {"error": str(error)})

    # The store keeps only the headers worth keeping, never Authorization (store.KEPT_HEADERS).
    result = gateway.accept(body, headers, events, provider=provider)
    log.info(
        "webhook stored: %d new, %d duplicate, %d statuses, %d ignored",
        result.new_messages,
        result.duplicates,
        result.statuses,
        result.ignored,
    )
    # (Not dataclasses.asdict: its deep copy cost more than the rest of the answer.)
    return Answer(
        200,
        {
            "status": "stored",
            "new_messages": result.new_messages,
            "duplicates": result.duplicates,
            "statuses": result.statuses,
            "ignored": result.ignored,
        },
    )


def _serpro_token_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>` (DESIGN §9.1), or the bare token: SERPRO's docs do not
    show how it sends back the jwtToken it was registered with."""
    if verify_bearer(header, token):
        return True
    return bool(header) and hmac.compare_digest(
        (header or "").strip().encode("utf-8"), token.encode("utf-8")
    )


def _unauthorized(signature: str | None, bearer: str | None) -> Answer:
    if signature is None and bearer is None:
        reason = f"missing {SIGNATURE_HEADER}"
    elif signature is not None:
        reason = f"{SIGNATURE_HEADER} does not match the body"
    else:
        reason = "missing signature or wrong bearer token"
    log.warning("webhook refused: %s", reason)
    return Answer(401, {"error": reason})


def record_rejection(
    body: bytes, headers: Mapping[str, str], answer: Answer, gateway: Gateway
) -> None:
    try:
        gateway.reject(body, headers, str(answer.body.get("error")), answer.status)
    except Exception as error:  # the answer stands even when the record cannot be written
        log.error("could not record a rejected webhook body: %s", error)


def refuse_too_large(headers: Mapping[str, str], limit: int, gateway: Gateway) -> Answer:
    """The 413 for a body over MAX_BODY_BYTES, recorded (without the body) like any refusal."""
    answer = Answer(413, {"error": f"$: body over the limit of {limit} bytes"})
    record_rejection(b"", headers, answer, gateway)
    return answer
