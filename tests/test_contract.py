"""core.contract: the text and metadata a backend receives (DESIGN §7), events as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from whatsapp_api_integration.core.contract import (
    IncomingMessage,
    backend_text,
    event_to_json,
    message_metadata,
    to_incoming,
)
from whatsapp_api_integration.core.events import Message
from whatsapp_api_integration.core.inbound import parse_webhook

pytestmark = pytest.mark.core

CORPUS = Path(__file__).parent / "corpus"


def from_case(name: str) -> Any:
    event: Any
    [event] = parse_webhook((CORPUS / f"{name}.json").read_bytes())
    return event


def intent(text: str | None) -> tuple[str, Any]:
    """Split Rasa's /intent{json} into its name and its (parsed) entities."""
    assert text is not None
    assert text.startswith("/")
    name, brace, rest = text[1:].partition("{")
    return name, json.loads(brace + rest)


def test_text_is_the_body_as_is() -> None:
    assert backend_text(from_case("text_reply_forwarded")) == "Sim, quero saber mais 👍"


def test_replies_are_their_ids_including_falsy_looking_ones() -> None:
    assert backend_text(from_case("interactive_button_reply_zero")) == "0"
    assert backend_text(from_case("interactive_list_reply")) == "help_voting"


def test_template_button_payload_else_text() -> None:
    event = from_case("button")
    assert backend_text(event) == "confirmar_inscricao"
    raw = json.loads((CORPUS / "button.json").read_text())
    raw["entry"][0]["changes"][0]["value"]["messages"][0]["button"] = {"text": "Confirmar"}
    without_payload: Any
    [without_payload] = parse_webhook(json.dumps(raw))
    assert backend_text(without_payload) == "Confirmar"


def test_media_intent_keys_in_order_absent_left_out() -> None:
    text = backend_text(from_case("document"))
    assert text == (
        '/whatsapp_media{"type":"document","id":"1234567890987654321",'
        '"mime_type":"application/pdf","caption":"Comprovante","filename":"comprovante.pdf"}'
    )
    assert intent(backend_text(from_case("sticker")))[1] == {
        "type": "sticker",
        "id": "1234567890987654321",
        "mime_type": "image/webp",
    }


def test_location_intent_keeps_non_ascii() -> None:
    text = backend_text(from_case("location"))
    assert text == (
        '/whatsapp_location{"latitude":-15.7939869,"longitude":-47.8828,'
        '"name":"Esplanada dos Ministérios","address":"Brasília - DF, 70050-000"}'
    )


def test_contacts_reaction_order_flow_intents() -> None:
    name, entities = intent(backend_text(from_case("contacts")))
    assert name == "whatsapp_contacts"
    assert entities["contacts"][0]["name"]["formatted_name"] == "Ana Souza"
    assert intent(backend_text(from_case("reaction"))) == (
        "whatsapp_reaction",
        {"emoji": "😮", "message_id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBIzQjlGMEQyQjQzMUMwRTc2QjEA"},
    )
    assert intent(backend_text(from_case("reaction_removed")))[1]["emoji"] == ""
    name, entities = intent(backend_text(from_case("order")))
    assert (name, list(entities)) == ("whatsapp_order", ["catalog_id", "product_items", "text"])
    assert intent(backend_text(from_case("interactive_nfm_reply"))) == (
        "whatsapp_flow",
        {"response": {"flow_token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.", "nome": "Ana", "nota": "5"}},
    )


def test_flow_response_that_is_not_json_is_passed_as_a_string() -> None:
    raw = json.loads((CORPUS / "interactive_nfm_reply.json").read_text())
    message = raw["entry"][0]["changes"][0]["value"]["messages"][0]
    for response in ("not json", "[" * 10_000, '"\\ud800"'):
        message["interactive"]["nfm_reply"]["response_json"] = response
        [flow] = parse_webhook(json.dumps(raw))
        assert isinstance(flow, Message)
        assert intent(backend_text(flow)) == ("whatsapp_flow", {"response": response})


@pytest.mark.parametrize(
    "name",
    [
        "system_user_changed_number",
        "edit",
        "revoke",
        "request_welcome",
        "unsupported",
        "interactive_missing_object",
    ],
)
def test_not_for_the_backend(name: str) -> None:
    event = from_case(name)
    assert backend_text(event) is None
    assert to_incoming(event) is None


def test_to_incoming() -> None:
    event = from_case("text_br_mobile_without_ninth_digit")
    incoming = to_incoming(event)
    assert isinstance(incoming, IncomingMessage)
    assert (incoming.sender, incoming.text, incoming.message) == ("+556187654321", "Olá", event)
    assert to_incoming(event, br_ninth_digit=True).sender == "+5561987654321"  # type: ignore[union-attr]
    assert incoming.metadata == {
        "provider": "cloud_api",
        "phone_number_id": "106540352242922",
        "wa_id": "556187654321",
        "user_id": "BR.13491208655302741918",
        "username": None,
        "contact_name": "João",
        "message_id": event.id,
        "message_type": "text",
        "timestamp": 1749416383,
        "context": None,
        "text": {"body": "Olá"},
    }
    json.dumps(incoming.metadata)


def test_to_incoming_for_a_bsuid_only_contact() -> None:
    incoming = to_incoming(from_case("text_bsuid_only"))
    assert incoming is not None
    assert incoming.sender == "BR.13491208655302741918"
    assert incoming.metadata["wa_id"] is None
    assert incoming.metadata["contact_name"] == "Maria"


def test_metadata_carries_context_referral_and_the_type_data() -> None:
    metadata = message_metadata(from_case("text_reply_forwarded"))
    assert metadata["context"] == {
        "from": "15550783881",
        "id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA",
        "forwarded": True,
        "frequently_forwarded": False,
    }
    assert message_metadata(from_case("text_referral"))["referral"]["source_type"] == "ad"
    assert message_metadata(from_case("location"))["location"]["latitude"] == -15.7939869
    assert message_metadata(from_case("interactive_list_reply"))["interactive"] == {
        "type": "list_reply",
        "id": "help_voting",
        "title": "Como votar",
        "description": "Saiba como votar nos comentários",
    }


def test_resolve_payload_replaces_a_reference() -> None:
    event = from_case("interactive_button_reply")
    refs = {"1": '/vote{"choice": 1, "comment": 42}'}
    incoming = to_incoming(event, resolve_payload=refs.get)
    assert incoming is not None
    assert incoming.text == refs["1"]
    assert incoming.metadata["interactive"]["payload"] == refs["1"]
    assert incoming.metadata["interactive"]["id"] == "1"
    unresolved = to_incoming(event, resolve_payload=lambda _id: None)
    assert unresolved is not None
    assert unresolved.text == "1"


def test_resolve_payload_is_only_asked_about_replies() -> None:
    asked: list[str] = []

    def resolve(reference: str) -> str | None:
        asked.append(reference)
        return "payload"

    incoming = to_incoming(from_case("text"), resolve_payload=resolve)
    assert incoming is not None
    assert incoming.text == "Does it come in another color?"
    assert asked == []


def test_message_with_neither_wa_id_nor_bsuid_is_not_for_the_backend() -> None:
    event = from_case("text")
    anonymous = Message(
        provider=event.provider,
        phone_number_id=event.phone_number_id,
        display_phone_number=None,
        id=event.id,
        timestamp=None,
        type="text",
        from_=None,
        data=event.data,
    )
    assert to_incoming(anonymous) is None


# ---- event_to_json -------------------------------------------------------------------


def test_event_to_json_kinds_and_common_keys() -> None:
    for path in sorted(CORPUS.glob("*.json")):
        for event in parse_webhook(path.read_bytes()):
            record = event_to_json(event)
            assert record["kind"] in {"message", "status", "error", "unknown"}
            for key in ("provider", "phone_number_id", "display_phone_number", "message_id"):
                assert key in record
            assert json.loads(json.dumps(record)) == record


def test_event_to_json_message() -> None:
    record = event_to_json(from_case("image"))
    assert record["kind"] == "message"
    assert record["message_type"] == "image"
    assert record["wa_id"] == "16505551234"
    assert record["contact_name"] == "Sheena Nelson"
    assert record["text"].startswith("/whatsapp_media{")
    assert record["data"]["caption"] == "Foto do documento"
    assert "kind" not in record["data"]


def test_event_to_json_edit_nests_the_new_version() -> None:
    data = event_to_json(from_case("edit"))["data"]
    assert data["original_message_id"].startswith("wamid.")
    assert data["message"]["text"] == "Texto corrigido"
    assert data["message"]["data"] == {"body": "Texto corrigido"}


def test_event_to_json_status_error_unknown() -> None:
    status = event_to_json(from_case("serpro_status_failed"))
    assert (status["kind"], status["status"], status["request_id"]) == (
        "status",
        "failed",
        "0b9d6e42-8c31-4f7a-b2e5-91d3c6a4f087",
    )
    assert status["errors"] == [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "details": "Message Undeliverable.",
        }
    ]
    error = event_to_json(from_case("webhook_errors"))
    assert (error["kind"], error["errors"][0]["code"]) == ("error", 130429)
    unknown = event_to_json(from_case("unknown_type"))
    assert (unknown["kind"], unknown["message_id"]) == (
        "unknown",
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
    )
    assert unknown["raw"]["type"] == "ephemeral_gift"


def test_event_to_json_rejects_what_is_not_an_event() -> None:
    with pytest.raises(TypeError):
        event_to_json("not an event")  # type: ignore[arg-type]
