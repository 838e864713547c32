"""`POST /webhooks/whatsapp/proactive`: the way back for what the bot sends on its own.

Rasa's gateway channel (`integrations.rasa.GatewayRestInput`) posts here what Rasa sends
outside an answer (reminders, external events, `trigger_intent`):
`{"recipient_id": "+5561987654321", "messages": [{"text": ...}, ...]}` with
`Authorization: Bearer <PROACTIVE_TOKEN>`. The messages are rendered and sent like replies
(`pipeline.proactive`). Off (404) while PROACTIVE_TOKEN is unset.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from whatsapp_api_integration.core.outbound import UnsupportedMessageError
from whatsapp_api_integration.pipeline.proactive import ProactiveError, ProactiveSender
from whatsapp_api_integration.providers import SendError

log = logging.getLogger(__name__)

blueprint = Blueprint("whatsapp_proactive", __name__, url_prefix="/webhooks/whatsapp")


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


@blueprint.post("/proactive")
def proactive() -> tuple[Response, int]:
    state = current_app.extensions["whatsapp_gateway"]
    token = state.settings.proactive_token
    if not token:
        return _error(404, "proactive sends are off: set PROACTIVE_TOKEN to turn them on")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        log.warning("proactive send refused: missing or wrong bearer token")
        return _error(401, "missing or wrong bearer token")
    document: Any = request.get_json(silent=True)
    if not isinstance(document, dict):
        return _error(400, '$: expected a JSON object {"recipient_id": ..., "messages": [...]}')
    recipient = document.get("recipient_id")
    messages = document.get("messages")
    if not isinstance(recipient, str) or not recipient.strip():
        return _error(400, "$.recipient_id: expected the bot's sender id, e.g. +5561987654321")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return _error(400, '$.messages: expected a list of response objects like {"text": ...}')
    sender = ProactiveSender(state.gateway, default_provider=state.settings.whatsapp_provider)
    try:
        results = sender.send(recipient, messages)
    except (ProactiveError, UnsupportedMessageError) as error:
        return _error(422, str(error))
    except SendError as error:
        status = 503 if error.retryable else 422
        return _error(status, f"the provider refused the message: {error}")
    return jsonify(sent=len(results), message_ids=[r.message_id for r in results]), 200
