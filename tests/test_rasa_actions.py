"""rasa_sdk helpers: WhatsApp messages built by the core, checked against WhatsApp's limits.

The builders need only the core; the last tests use rasa_sdk's real `CollectingDispatcher`
and `Tracker` and run where rasa_sdk is installed (scripts/check-rasa-env)."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import check_cloud_api, render, to_cloud_api, to_serpro
from whatsapp_api_integration.integrations.rasa_actions import (
    contact_name,
    list_message,
    location_request,
    media_message,
    template_message,
    utter_list,
    utter_location_request,
    utter_template,
    whatsapp_metadata,
    whatsapp_provider,
)

SECTIONS: list[dict[str, Any]] = [
    {"title": "Norte", "rows": [{"id": "bel", "title": "Belém", "description": "Pará"}]},
    {"title": "Sul", "rows": [{"id": "poa", "title": "Porto Alegre"}, {"id": 0, "title": "Outra"}]},
]
CONTACT = Recipient(wa_id="5561987654321")


def sent_as(custom: dict[str, Any], provider: str = "cloud_api") -> Any:
    """What the pipeline sends for a response carrying this `custom` body."""
    (message,) = render([{"custom": custom}]).messages
    if provider == "serpro":
        request = to_serpro(message, CONTACT)
        return {"path": request.path, "body": request.body}
    return to_cloud_api(message, CONTACT)


def test_list_with_sections_for_the_cloud_api() -> None:
    body = sent_as(list_message("Onde você mora?", SECTIONS, button="Cidades", footer="EJ"))
    assert check_cloud_api(body) == []
    assert body["to"] == "5561987654321"
    interactive = body["interactive"]
    assert interactive["type"] == "list"
    assert interactive["action"]["button"] == "Cidades"
    assert [s["title"] for s in interactive["action"]["sections"]] == ["Norte", "Sul"]
    assert interactive["action"]["sections"][1]["rows"][1] == {"id": "0", "title": "Outra"}
    assert interactive["footer"] == {"text": "EJ"}


def test_list_with_sections_for_serpro() -> None:
    custom = list_message("Onde você mora?", SECTIONS, provider="serpro")
    request = sent_as(custom, "serpro")
    assert request["path"] == "/requisicao/mensagem/interativa-lista"
    assert request["body"]["destinatario"] == "+5561987654321"
    assert [s["titulo"] for s in request["body"]["secoes"]] == ["Norte", "Sul"]


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ([{"title": "A", "rows": [{"id": str(n), "title": f"T{n}"} for n in range(11)]}], "rows"),
        ([{"title": "A", "rows": [{"id": "1", "title": "x" * 25}]}], "title"),
        (
            [{"rows": [{"id": "1", "title": "a"}]}, {"rows": [{"id": "2", "title": "b"}]}],
            "title",
        ),
        ([{"title": "A", "rows": []}], "rows"),
        ([{"title": "A", "rows": [{"title": "no id"}]}], "id"),
    ],
)
def test_a_list_whatsapp_would_refuse_is_an_error_naming_the_problem(
    sections: list[dict[str, Any]], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        list_message("Escolha", sections)


def test_location_request_template_and_media() -> None:
    assert sent_as(location_request("Onde você está?"))["interactive"]["type"] == (
        "location_request_message"
    )
    template = sent_as(
        template_message(
            "retomar",
            components=[{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}],
        )
    )
    assert template["template"]["name"] == "retomar"
    assert template["template"]["language"] == {"code": "pt_BR"}
    serpro = sent_as(
        template_message("retomar", provider="serpro", destination="5561987654321"), "serpro"
    )
    assert serpro["body"]["destinatarios"] == ["+5561987654321"]
    image = sent_as(media_message("image", link="https://example.org/a.jpg", caption="Oi"))
    assert image["image"] == {"link": "https://example.org/a.jpg", "caption": "Oi"}
    with pytest.raises(ValueError, match="kind"):
        media_message("hologram", link="https://example.org/a")
    with pytest.raises(ValueError, match="destination"):
        template_message("retomar", provider="serpro")


class FakeTracker:
    """Only for the pure helpers; the rasa_sdk tests below use the real Tracker."""

    def __init__(self, metadata: Any, sender_id: str = "+5561987654321") -> None:
        self.sender_id = sender_id
        self.latest_message = {"text": "oi", "metadata": metadata}


def test_metadata_helpers_survive_messages_from_elsewhere() -> None:
    assert whatsapp_metadata(FakeTracker(None)) == {}
    assert contact_name(FakeTracker(None), "Participante") == "Participante"
    assert contact_name(FakeTracker({"contact_name": "Ana"})) == "Ana"
    assert whatsapp_provider(FakeTracker({"provider": "serpro"})) == "serpro"
    assert whatsapp_provider(FakeTracker("not a mapping")) == "cloud_api"


# ---- with rasa_sdk's own classes -----------------------------------------------------------


@pytest.fixture
def rasa_sdk_classes() -> Any:
    executor = pytest.importorskip(
        "rasa_sdk.executor", reason="needs rasa_sdk (run by scripts/check-rasa-env)"
    )
    import rasa_sdk

    return rasa_sdk.Tracker, executor.CollectingDispatcher


def tracker_state(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "sender_id": "+5561987654321",
        "slots": {},
        "latest_message": {"text": "oi", "intent": {"name": "greet"}, "metadata": metadata},
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }


@pytest.mark.rasa
def test_utter_helpers_with_rasa_sdks_dispatcher_and_tracker(rasa_sdk_classes: Any) -> None:
    tracker_class, dispatcher_class = rasa_sdk_classes
    metadata = {"provider": "serpro", "wa_id": "556187654321", "contact_name": "Joana"}
    tracker = tracker_class.from_dict(tracker_state(metadata))
    dispatcher = dispatcher_class()
    assert contact_name(tracker) == "Joana"
    utter_list(dispatcher, tracker, "Onde?", SECTIONS)
    utter_location_request(dispatcher, tracker, "Manda sua localização")
    utter_template(dispatcher, tracker, "retomar")
    lists, location, template = (message["custom"] for message in dispatcher.messages)
    assert lists["path"] == "/requisicao/mensagem/interativa-lista"  # the contact is at SERPRO
    assert location["path"] == "/requisicao/mensagem/interativa-localizacao"
    assert template["body"]["destinatarios"] == ["+556187654321"]  # the wa_id WhatsApp gave
    for message in dispatcher.messages:  # Rasa passes `custom` on; the pipeline sends it as is
        assert render([{"custom": message["custom"]}]).warnings == ()


@pytest.mark.rasa
def test_cloud_api_contact_gets_graph_bodies(rasa_sdk_classes: Any) -> None:
    tracker_class, dispatcher_class = rasa_sdk_classes
    tracker = tracker_class.from_dict(tracker_state({"provider": "cloud_api"}))
    dispatcher = dispatcher_class()
    utter_list(dispatcher, tracker, "Onde?", SECTIONS)
    body = sent_as(dispatcher.messages[0]["custom"])
    assert body["interactive"]["type"] == "list"
    assert check_cloud_api(body) == []
