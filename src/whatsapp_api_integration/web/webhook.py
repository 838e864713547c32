"""The webhook's Flask routes (DESIGN §4): a request mapped onto `intake.receive`."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, request

from whatsapp_api_integration.core.signature import handshake_challenge
from whatsapp_api_integration.web.intake import (
    Answer,
    receive,
    refuse_too_large,
)

__all__ = ["Answer", "blueprint", "read_body", "receive", "too_large"]

log = logging.getLogger(__name__)

blueprint = Blueprint("whatsapp_webhook", __name__, url_prefix="/webhooks/whatsapp")

# What `jsonify` writes outside debug mode (Flask's default provider: sorted keys, ASCII,
# compact, a newline), without building an encoder and a provider call for every ack.
_ENCODER = json.JSONEncoder(ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def _state() -> Any:
    return current_app.extensions["whatsapp_gateway"]


@blueprint.get("/")
def health() -> Response:
    return Response("ok", mimetype="text/plain")


@blueprint.get("/webhook")
def handshake() -> Response:
    challenge = handshake_challenge(request.args, _state().settings.wpp_verify_token)
    if challenge is None:
        log.warning("webhook handshake refused (wrong or missing hub.verify_token or challenge)")
        return Response("Forbidden", status=403, mimetype="text/plain")
    log.info("webhook handshake accepted")
    return Response(challenge, status=200, mimetype="text/plain")


@blueprint.post("/webhook")
def webhook() -> tuple[Response, int]:
    state = _state()
    limit = state.settings.max_body_bytes
    body = read_body(limit)
    if body is None:
        return too_large(request.content_length, limit)
    answer = receive(body, dict(request.headers.items()), state.settings, state.gateway)
    return json_answer(answer)


def read_body(limit: int) -> bytes | None:
    """The request body, or None when it is over `limit` bytes.

    A declared Content-Length over the limit is refused before anything is read. A streamed
    (chunked) body is read at most `limit + 1` bytes: werkzeug's own cap would silently cut
    it at the limit instead, and the cut body would then look forged or malformed.
    """
    length = request.content_length
    if length is not None:
        if length > limit:
            return None
        return request.get_data(cache=False)
    if "wsgi.input_terminated" not in request.environ:
        return b""  # the server cannot tell where such a body ends: nothing is safe to read
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def too_large(length: int | None, limit: int) -> tuple[Response, int]:
    size = f"{length} bytes" if length is not None else "a streamed body"
    log.warning("webhook body refused: %s is over MAX_BODY_BYTES=%d", size, limit)
    answer = refuse_too_large(dict(request.headers.items()), limit, _state().gateway)
    return json_answer(answer)


def json_answer(answer: Answer) -> tuple[Response, int]:
    text = _ENCODER.encode(answer.body) + "\n"
    return Response(text, content_type="application/json"), answer.status
