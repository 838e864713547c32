"""Who a message is from, as the backend and the store see it (DESIGN §6)."""

from __future__ import annotations

from whatsapp_api_integration.core.events import Message

__all__ = ["add_br_ninth_digit", "backend_sender_id", "contact_key"]

_BRAZIL = "55"
_MOBILE_FIRST_DIGITS = frozenset("6789")
_AREA_CODE_DIGITS = frozenset("123456789")  # Brazilian area codes (DDD) run 11-99, no zero


def add_br_ninth_digit(wa_id: str) -> str:
    """Give a Brazilian mobile number WhatsApp sent without its 9th digit that digit back.

    Only a 12-digit ``wa_id`` made of ``55``, a two-digit area code and 8 digits starting
    with 6-9 (a mobile) changes: ``556187654321`` → ``5561987654321``. Landlines (8 digits
    starting 2-5), numbers that already have 13 digits, other countries and anything that is
    not plain ASCII digits are returned unchanged. (The original inserted a 9 into any
    number lacking one at that place, corrupting landlines and foreign numbers.)
    """
    if (
        len(wa_id) == 12
        and wa_id.isascii()
        and wa_id.isdigit()
        and wa_id.startswith(_BRAZIL)
        and wa_id[2] in _AREA_CODE_DIGITS
        and wa_id[3] in _AREA_CODE_DIGITS
        and wa_id[4] in _MOBILE_FIRST_DIGITS
    ):
        return f"{wa_id[:4]}9{wa_id[4:]}"
    return wa_id


def backend_sender_id(message: Message, *, br_ninth_digit: bool = False) -> str:
    """The sender id a backend sees: ``+<wa_id>`` (the original's convention, so existing Rasa
    trackers keep their history), or the business-scoped user id as is when WhatsApp sent no
    phone number. Empty only for a message that carries neither."""
    wa_id = message.from_
    if wa_id:
        return "+" + (add_br_ninth_digit(wa_id) if br_ninth_digit else wa_id)
    return message.user_id or ""


def contact_key(message: Message) -> str:
    """``provider:phone_number_id:contact``: one conversation, for ordering and history.

    The contact is the wa_id when sent, else the BSUID. The business number is part of the
    key because one gateway may serve several numbers, each its own conversation.
    """
    return f"{message.provider}:{message.phone_number_id or ''}:{message.contact_id}"
