"""What a backend receives for a message (DESIGN §7), and events as plain JSON.

Every message type maps to one text: a text's body, a reply's id (the payload we sent), or
Rasa's own ``/intent{json}`` syntax for what has no text (media, location, …), so a Rasa bot
can handle every type with rules and no NLU training. Other backends read ``metadata``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from whatsapp_api_integration.core.events import (
    ButtonReply,
    Contacts,
    Context,
    ErrorDetail,
    Event,
    FlowReply,
    ListReply,
    Location,
    Media,
    Message,
    MessageData,
    Order,
    Reaction,
    Status,
    TemplateButton,
    Text,
    Unknown,
    Unsupported,
    WebhookError,
)
from whatsapp_api_integration.core.identity import backend_sender_id
from whatsapp_api_integration.core.inbound import WebhookFormatError, load_json

__all__ = [
    "IncomingMessage",
    "backend_text",
    "data_to_json",
    "event_to_json",
    "message_metadata",
    "to_incoming",
]


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message as a backend gets it: ``sender`` (§6), ``text`` (§7), ``metadata``
    (JSON-serialisable) and the parsed `Message` for Python backends that want more."""

    sender: str
    text: str
    metadata: dict[str, Any]
    message: Message


def _intent(name: str, entities: Mapping[str, Any]) -> str:
    """Rasa's ``/intent{"entity": value}`` form: compact JSON, non-ASCII kept as is."""
    body = json.dumps(entities, ensure_ascii=False, separators=(",", ":"))
    return f"/{name}{body}"


def _present(**values: Any) -> dict[str, Any]:
    """The keys whose values are not None, in the order given."""
    return {key: value for key, value in values.items() if value is not None}


def backend_text(message: Message) -> str | None:
    """The text a backend receives for ``message``; None when it is not sent to a backend
    (system, edit, revoke, unsupported, request_welcome, or a message without its data)."""
    data = message.data
    if isinstance(data, Text):
        return data.body
    if isinstance(data, (ButtonReply, ListReply)):
        return data.id
    if isinstance(data, TemplateButton):
        return data.payload or data.text
    if isinstance(data, Media):
        return _intent(
            "whatsapp_media",
            _present(
                type=data.kind,
                id=data.id,
                mime_type=data.mime_type,
                caption=data.caption,
                filename=data.filename,
            ),
        )
    if isinstance(data, Location):
        return _intent(
            "whatsapp_location",
            _present(
                latitude=data.latitude,
                longitude=data.longitude,
                name=data.name,
                address=data.address,
            ),
        )
    if isinstance(data, Contacts):
        return _intent("whatsapp_contacts", {"contacts": [dict(card) for card in data.contacts]})
    if isinstance(data, Reaction):
        return _intent("whatsapp_reaction", _present(emoji=data.emoji, message_id=data.message_id))
    if isinstance(data, Order):
        return _intent(
            "whatsapp_order",
            _present(
                catalog_id=data.catalog_id,
                product_items=[dict(item) for item in data.product_items],
                text=data.text,
            ),
        )
    if isinstance(data, FlowReply):
        return _intent("whatsapp_flow", {"response": _flow_response(data.response_json)})
    return None


def _flow_response(response_json: str | None) -> Any:
    """The Flow's answer parsed; the string as is when it is not JSON (it came from the
    contact's device, so it gets the same strict, depth-limited decoder as a body)."""
    if response_json is None:
        return None
    try:
        return load_json(response_json)
    except WebhookFormatError:
        return response_json


def to_incoming(
    message: Message,
    *,
    br_ninth_digit: bool = False,
    resolve_payload: Callable[[str], str | None] | None = None,
) -> IncomingMessage | None:
    """The backend's view of ``message``, or None when it is not for a backend.

    ``resolve_payload`` maps the id of a tapped button or list row back to the payload it
    stands for, where the outbound renderer had to replace a long or repeated payload with a
    reference (DESIGN §8 rule 4); None from it means the id is the payload itself.
    """
    text = backend_text(message)
    sender = backend_sender_id(message, br_ninth_digit=br_ninth_digit)
    if text is None or not sender:
        return None
    metadata = message_metadata(message)
    if resolve_payload is not None and isinstance(message.data, (ButtonReply, ListReply)):
        payload = resolve_payload(message.data.id)
        if payload is not None:
            text = payload
            metadata["interactive"]["payload"] = payload
    return IncomingMessage(sender=sender, text=text, metadata=metadata, message=message)


def message_metadata(message: Message) -> dict[str, Any]:
    """``metadata`` of DESIGN §7; the type's data sits under the type's name, as in
    WhatsApp's own message object (``metadata["location"]["latitude"]``)."""
    metadata: dict[str, Any] = {
        "provider": message.provider,
        "phone_number_id": message.phone_number_id,
        "wa_id": message.from_,
        "user_id": message.user_id,
        "username": message.username,
        "contact_name": message.contact_name,
        "message_id": message.id,
        "message_type": message.type,
        "timestamp": message.timestamp,
        "context": _context_json(message.context),
    }
    if message.referral is not None:
        metadata["referral"] = dict(message.referral)
    if message.data is not None:
        metadata[message.type] = data_to_json(message.data)
    return metadata


# ---- events as JSON --------------------------------------------------------------------

_REPLY_KINDS: dict[type[Any], str] = {
    ButtonReply: "button_reply",
    ListReply: "list_reply",
    FlowReply: "nfm_reply",
}


def data_to_json(data: MessageData) -> dict[str, Any]:
    """A message's type-specific data as a JSON object, absent values left out."""
    out: dict[str, Any] = {}
    reply_kind = _REPLY_KINDS.get(type(data))
    if reply_kind is not None:
        out["type"] = reply_kind
    for field in fields(data):
        value = getattr(data, field.name)
        if value is None or field.name == "kind":  # a Media's kind is the message type
            continue
        if isinstance(value, tuple):
            value = [dict(item) for item in value]
        elif isinstance(value, Message):
            value = _message_json(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out["type" if isinstance(data, Unsupported) else field.name] = value
    return out


def _context_json(context: Context | None) -> dict[str, Any] | None:
    if context is None:
        return None
    return _present(
        **{"from": context.from_, "id": context.id},
        forwarded=context.forwarded,
        frequently_forwarded=context.frequently_forwarded,
        referred_product=None
        if context.referred_product is None
        else dict(context.referred_product),
    )


def _errors_json(errors: tuple[ErrorDetail, ...]) -> list[dict[str, Any]]:
    return [
        _present(
            code=error.code,
            title=error.title,
            message=error.message,
            details=error.details,
            href=error.href,
        )
        for error in errors
    ]


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "kind": "message",
        "provider": message.provider,
        "phone_number_id": message.phone_number_id,
        "display_phone_number": message.display_phone_number,
        "message_id": message.id,
        "message_type": message.type,
        "timestamp": message.timestamp,
        "wa_id": message.from_,
        "user_id": message.user_id,
        "username": message.username,
        "contact_name": message.contact_name,
        "context": _context_json(message.context),
        "referral": None if message.referral is None else dict(message.referral),
        "errors": _errors_json(message.errors),
        "text": backend_text(message),
        "data": None if message.data is None else data_to_json(message.data),
    }


def event_to_json(event: Event) -> dict[str, Any]:
    """Any event as a JSON-serialisable object with a ``kind`` (message, status, error or
    unknown) and the fields every event has (provider, phone_number_id,
    display_phone_number, message_id). Messages also carry ``text``, the backend text
    (before any payload reference is resolved), and ``data``, the type's own data."""
    if isinstance(event, Message):
        return _message_json(event)
    if not isinstance(event, (Status, WebhookError, Unknown)):
        raise TypeError(f"not an event: {type(event).__name__}")
    base: dict[str, Any] = {
        "provider": event.provider,
        "phone_number_id": event.phone_number_id,
        "display_phone_number": event.display_phone_number,
    }
    if isinstance(event, Status):
        return {
            "kind": "status",
            **base,
            "message_id": event.id,
            "status": event.status,
            "timestamp": event.timestamp,
            "recipient_id": event.recipient_id,
            "recipient_user_id": event.recipient_user_id,
            "biz_opaque_callback_data": event.biz_opaque_callback_data,
            "conversation": None if event.conversation is None else dict(event.conversation),
            "pricing": None if event.pricing is None else dict(event.pricing),
            "errors": _errors_json(event.errors),
            "request_id": event.request_id,
        }
    if isinstance(event, WebhookError):
        return {"kind": "error", **base, "message_id": None, "errors": _errors_json(event.errors)}
    return {
        "kind": "unknown",
        **base,
        "message_id": event.message_id,
        "reason": event.reason,
        "field": event.field,
        "raw": dict(event.raw),
    }
