"""Typed, immutable events that the parser produces from a webhook body.

These are plain frozen dataclasses (standard library only) so the core installs anywhere,
including Rasa 3.6's environment with its pydantic 1 pin. See docs/decisions.md.

`raw` fields keep the JSON object the event came from, so nothing WhatsApp sent is lost
even where the core does not model it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Provider = Literal["cloud_api", "serpro"]
PROVIDERS: tuple[Provider, ...] = ("cloud_api", "serpro")

JSONObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One entry of an `errors` array (message, status or webhook level)."""

    code: int | None
    title: str | None = None
    message: str | None = None
    details: str | None = None
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """`messages[].context`: what the message replies to, and forwarding flags."""

    from_: str | None = None
    id: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: JSONObject | None = None


# ---- type-specific message data -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    body: str


MediaKind = Literal["image", "video", "audio", "document", "sticker"]
MEDIA_KINDS: tuple[MediaKind, ...] = ("image", "video", "audio", "document", "sticker")


@dataclass(frozen=True, slots=True)
class Media:
    kind: MediaKind
    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None  # document
    voice: bool | None = None  # audio: a recorded voice note
    animated: bool | None = None  # sticker
    url: str | None = None  # sent directly in webhooks since late 2025


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Contacts:
    contacts: tuple[JSONObject, ...]  # the shared contact cards, as sent


@dataclass(frozen=True, slots=True)
class ButtonReply:
    id: str
    title: str


@dataclass(frozen=True, slots=True)
class ListReply:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class FlowReply:
    """`interactive.nfm_reply`: a WhatsApp Flow (or address message) answer."""

    name: str | None
    body: str | None
    response_json: str | None


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """`type: button`: a tap on a template's quick-reply button."""

    payload: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class Reaction:
    message_id: str | None
    emoji: str  # "" when the reaction was removed (Meta omits the field; older payloads send "")


@dataclass(frozen=True, slots=True)
class Order:
    catalog_id: str | None
    text: str | None
    product_items: tuple[JSONObject, ...]


@dataclass(frozen=True, slots=True)
class System:
    body: str | None
    type: str | None
    wa_id: str | None = None  # the contact's NEW number, not the sender
    new_wa_id: str | None = None  # legacy field name
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    original_message_id: str | None
    message: Message | None  # the message as edited


@dataclass(frozen=True, slots=True)
class Revoke:
    original_message_id: str | None


@dataclass(frozen=True, slots=True)
class Unsupported:
    """`unsupported` (and `request_welcome`, which carries no content)."""

    unsupported_type: str | None = None


MessageData = (
    Text
    | Media
    | Location
    | Contacts
    | ButtonReply
    | ListReply
    | FlowReply
    | TemplateButton
    | Reaction
    | Order
    | System
    | Edit
    | Revoke
    | Unsupported
)


# ---- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """An inbound message from a contact (one `value.messages[]` item)."""

    provider: Provider
    phone_number_id: str | None
    display_phone_number: str | None
    id: str  # the wamid
    timestamp: int | None
    type: str
    from_: str | None  # `from`, the contact's wa_id; may be absent since BSUIDs
    user_id: str | None = None  # `from_user_id`, the business-scoped user id (BSUID)
    username: str | None = None
    contact_name: str | None = None
    context: Context | None = None
    referral: JSONObject | None = None
    data: MessageData | None = None  # None when the type's own object was absent
    errors: tuple[ErrorDetail, ...] = ()
    raw: JSONObject = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def contact_id(self) -> str:
        """The contact as WhatsApp knows it: the wa_id when sent, else the BSUID."""
        return self.from_ or self.user_id or ""


@dataclass(frozen=True, slots=True)
class Status:
    """A status of one of our outgoing messages (one `value.statuses[]` item)."""

    provider: Provider
    phone_number_id: str | None
    display_phone_number: str | None
    id: str  # the wamid of our outgoing message
    status: str  # sent, delivered, read, played, failed, or any other string as is
    timestamp: int | None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    biz_opaque_callback_data: str | None = None
    conversation: JSONObject | None = None
    pricing: JSONObject | None = None
    errors: tuple[ErrorDetail, ...] = ()
    request_id: str | None = None  # SERPRO's `idRequisicao`
    raw: JSONObject = dataclasses.field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WebhookError:
    """Webhook-level `value.errors`: system, app or account problems."""

    provider: Provider
    phone_number_id: str | None
    display_phone_number: str | None
    errors: tuple[ErrorDetail, ...]
    raw: JSONObject = dataclasses.field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Unknown:
    """Anything the core does not answer: other change fields, unknown message types,
    messages whose content could not be read. Stored and logged, never answered."""

    provider: Provider
    phone_number_id: str | None
    display_phone_number: str | None
    reason: str  # e.g. "field 'account_update'", "message type 'poll'"
    field: str | None = None  # the change's `field`
    message_id: str | None = None  # when the unknown thing is a message with an id
    raw: JSONObject = dataclasses.field(default_factory=dict, repr=False, compare=False)


Event = Message | Status | WebhookError | Unknown


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a reply goes to: the wa_id (`to`) when known, else the BSUID (`recipient`)."""

    wa_id: str | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if not self.wa_id and not self.user_id:
            raise ValueError("a recipient needs a wa_id or a business-scoped user id")

    @classmethod
    def of(cls, message: Message) -> Recipient:
        return cls(wa_id=message.from_, user_id=message.user_id)
