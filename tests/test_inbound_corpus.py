"""Every body of tests/corpus and of pywa's fixtures parses, to the events it should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from whatsapp_api_integration.core.contract import backend_text, event_to_json
from whatsapp_api_integration.core.events import (
    ButtonReply,
    Contacts,
    Edit,
    FlowReply,
    ListReply,
    Location,
    Media,
    Message,
    Order,
    Reaction,
    Revoke,
    Status,
    System,
    TemplateButton,
    Text,
    Unknown,
    Unsupported,
    WebhookError,
)
from whatsapp_api_integration.core.inbound import detect_provider, load_json, parse_webhook

pytestmark = pytest.mark.core

CORPUS = Path(__file__).parent / "corpus"
# pywa's update fixtures (MIT, see its LICENSE there), copied from ../shared/corpus.
PYWA = CORPUS / "pywa-updates"


def case(name: str) -> bytes:
    return (CORPUS / f"{name}.json").read_bytes()


def only(name: str) -> Any:
    events = parse_webhook(case(name))
    assert len(events) == 1, events
    return events[0]


# (case, event class, message type or status, data class or None, backend text or None)
EXPECTED: list[tuple[str, type, str | None, type | None, str | None]] = [
    ("text", Message, "text", Text, "Does it come in another color?"),
    ("text_reply_forwarded", Message, "text", Text, "Sim, quero saber mais 👍"),
    ("text_product_inquiry", Message, "text", Text, "Is this still available?"),
    ("text_referral", Message, "text", Text, "Quero participar"),
    ("text_bsuid_only", Message, "text", Text, "Oi"),
    ("text_br_mobile_without_ninth_digit", Message, "text", Text, "Olá"),
    ("image", Message, "image", Media, None),
    ("video", Message, "video", Media, None),
    ("audio_voice", Message, "audio", Media, None),
    ("document", Message, "document", Media, None),
    ("sticker", Message, "sticker", Media, None),
    ("location", Message, "location", Location, None),
    ("contacts", Message, "contacts", Contacts, None),
    ("interactive_button_reply", Message, "interactive", ButtonReply, "1"),
    ("interactive_button_reply_zero", Message, "interactive", ButtonReply, "0"),
    ("interactive_list_reply", Message, "interactive", ListReply, "help_voting"),
    ("interactive_nfm_reply", Message, "interactive", FlowReply, None),
    ("interactive_missing_object", Message, "interactive", None, None),
    ("button", Message, "button", TemplateButton, "confirmar_inscricao"),
    ("reaction", Message, "reaction", Reaction, None),
    ("reaction_removed", Message, "reaction", Reaction, None),
    ("order", Message, "order", Order, None),
    ("system_user_changed_number", Message, "system", System, None),
    ("system_user_changed_user_id", Message, "system", System, None),
    ("system_customer_changed_number", Message, "system", System, None),
    ("system_customer_identity_changed", Message, "system", System, None),
    ("edit", Message, "edit", Edit, None),
    ("revoke", Message, "revoke", Revoke, None),
    ("request_welcome", Message, "request_welcome", Unsupported, None),
    ("unsupported", Message, "unsupported", Unsupported, None),
    ("unknown_type", Unknown, None, None, None),
    ("status_sent", Status, "sent", None, None),
    ("status_delivered", Status, "delivered", None, None),
    ("status_read", Status, "read", None, None),
    ("status_played", Status, "played", None, None),
    ("status_failed", Status, "failed", None, None),
    ("webhook_errors", WebhookError, None, None, None),
    ("unknown_field", Unknown, None, None, None),
    ("other_object", Unknown, None, None, None),
    ("serpro_text", Message, "text", Text, "Olá, quero participar"),
    ("serpro_interactive_button_reply", Message, "interactive", ButtonReply, "-1"),
    ("serpro_status_delivered", Status, "delivered", None, None),
    ("serpro_status_failed", Status, "failed", None, None),
]


def test_every_corpus_file_has_an_expectation() -> None:
    names = {path.stem for path in CORPUS.glob("*.json")}
    expected = {row[0] for row in EXPECTED} | {"batch"}
    assert names == expected


@pytest.mark.parametrize(("name", "kind", "subtype", "data_class", "text"), EXPECTED)
def test_corpus_case(
    name: str, kind: type, subtype: str | None, data_class: type | None, text: str | None
) -> None:
    event: Any = only(name)
    assert type(event).__name__ == kind.__name__
    assert event.provider == ("serpro" if name.startswith("serpro_") else "cloud_api")
    if isinstance(event, Message):
        assert event.type == subtype
        assert (type(event.data) if event.data is not None else None) is data_class
        if text is not None:
            assert backend_text(event) == text
        assert event.id.startswith("wamid.")
    if isinstance(event, Status):
        assert event.status == subtype
    json.dumps(event_to_json(event))  # always serialisable


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda p: p.stem)
def test_detected_provider_matches_the_envelope(path: Path) -> None:
    expected = "serpro" if path.stem.startswith("serpro_") else "cloud_api"
    assert detect_provider(load_json(path.read_bytes())) == expected


def test_batch_reads_every_entry_change_and_message_in_order() -> None:
    events: list[Any] = parse_webhook(case("batch"))
    assert [type(e).__name__ for e in events] == [
        "Message",
        "Message",
        "Message",
        "Status",
        "Status",
        "Message",
    ]
    first, second, third, delivered, read, other_number = events
    # contacts are listed B, A: names follow identity, not position
    assert (first.id, first.contact_name) == ("wamid.A1", "Ana")
    assert (second.id, second.contact_name) == ("wamid.B1", "Bruno")
    assert (third.id, third.contact_name, third.from_, third.user_id) == (
        "wamid.C1",
        None,
        None,
        "BR.333",
    )
    assert (delivered.status, read.status) == ("delivered", "read")
    assert other_number.phone_number_id == "987654321098765"
    assert other_number.contact_name == "Carla"
    assert first.phone_number_id == "106540352242922"


def test_serpro_status_carries_its_request_id_and_wamid() -> None:
    status: Any = only("serpro_status_delivered")
    assert status.request_id == "7f3c2a10-5b1e-4c8d-9a6f-2e4b8d1c0a93"
    assert status.id.startswith("wamid.")
    assert status.phone_number_id == "112233445566778"
    failed = only("serpro_status_failed")
    assert failed.errors[0].code == 131026
    assert failed.errors[0].details == "Message Undeliverable."


# ---- pywa's fixtures -------------------------------------------------------------------

# Files whose updates are not messages of a contact: calls, account, templates, preferences,
# echoes of what the business itself sent.
NOT_MESSAGES = {
    "account_update",
    "call_connect",
    "call_permission_update",
    "call_status",
    "call_terminate",
    "outgoing_message",
    "template_category_update",
    "template_components_update",
    "template_quality_update",
    "template_status_update",
    "user_marketing_preferences",
}


def pywa_cases() -> list[Any]:
    cases = []
    for path in sorted(PYWA.glob("*.json")):
        for name, body in json.loads(path.read_text(encoding="utf-8")).items():
            cases.append(pytest.param(path.stem, name, body, id=f"{path.stem}:{name}"))
    return cases


@pytest.mark.parametrize(("file", "name", "body"), pywa_cases())
def test_pywa_update_parses(file: str, name: str, body: Any) -> None:
    events = parse_webhook(json.dumps(body))
    assert events, "every update becomes at least one event"
    for event in events:
        json.dumps(event_to_json(event))
    if file in NOT_MESSAGES:
        assert all(isinstance(e, Unknown) for e in events), events
    else:
        assert any(isinstance(e, (Message, Status)) for e in events), events


def test_pywa_call_permission_reply_is_unknown_with_its_message_id() -> None:
    body = json.loads((PYWA / "call_permission_update.json").read_text())["accept"]
    [event] = parse_webhook(json.dumps(body))
    assert isinstance(event, Unknown)
    assert event.message_id == "wamid.x"
    assert "call_permission_reply" in event.reason
