"""core.identity: backend sender ids, the Brazilian 9th digit, contact keys (DESIGN §6)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whatsapp_api_integration.core.events import Message
from whatsapp_api_integration.core.identity import (
    add_br_ninth_digit,
    backend_sender_id,
    contact_key,
)

pytestmark = pytest.mark.core


@pytest.mark.parametrize(
    ("wa_id", "expected"),
    [
        ("556187654321", "5561987654321"),  # Brasília mobile without its 9
        ("551196543210", "5511996543210"),  # São Paulo, starts with 9
        ("558176543210", "5581976543210"),  # starts with 7
        ("552166543210", "5521966543210"),  # starts with 6
        ("5561987654321", "5561987654321"),  # already 13 digits
        ("556132345678", "556132345678"),  # landline (starts 3)
        ("556122345678", "556122345678"),  # landline (starts 2)
        ("556152345678", "556152345678"),  # landline (starts 5)
        ("14155550123", "14155550123"),  # USA: the original made it 1415955550123
        ("447911123456", "447911123456"),  # UK, 12 digits
        ("550187654321", "550187654321"),  # no area code has a 0
        ("+556187654321", "+556187654321"),
        ("55618765432", "55618765432"),
        (
            "５５６１８７６５４３２１",
            "５５６１８７６５４３２１",
        ),  # full-width digits are not digits here
        ("", ""),
        ("BR.13491208655302741918", "BR.13491208655302741918"),
    ],
)
def test_add_br_ninth_digit(wa_id: str, expected: str) -> None:
    assert add_br_ninth_digit(wa_id) == expected


@settings(max_examples=200)
@given(st.text(alphabet="0123456789+.BR", max_size=16))
def test_ninth_digit_only_ever_inserts_one_9_after_the_area_code(wa_id: str) -> None:
    result = add_br_ninth_digit(wa_id)
    assert result == wa_id or result == wa_id[:4] + "9" + wa_id[4:]
    assert add_br_ninth_digit(result) == result  # idempotent


def message(from_: str | None = "556187654321", user_id: str | None = "BR.1") -> Message:
    return Message(
        provider="cloud_api",
        phone_number_id="106540352242922",
        display_phone_number="556140041234",
        id="wamid.X",
        timestamp=1,
        type="text",
        from_=from_,
        user_id=user_id,
    )


def test_backend_sender_id() -> None:
    assert backend_sender_id(message()) == "+556187654321"
    assert backend_sender_id(message(), br_ninth_digit=True) == "+5561987654321"
    assert backend_sender_id(message("14155550123"), br_ninth_digit=True) == "+14155550123"
    assert backend_sender_id(message(None)) == "BR.1"
    assert backend_sender_id(message(None), br_ninth_digit=True) == "BR.1"
    assert backend_sender_id(message(None, None)) == ""


def test_contact_key() -> None:
    assert contact_key(message()) == "cloud_api:106540352242922:556187654321"
    assert contact_key(message(None)) == "cloud_api:106540352242922:BR.1"
    assert contact_key(message()) != contact_key(message("556187654322"))
