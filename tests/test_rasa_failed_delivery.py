"""Failed deliveries reach the bot, and the bot's own messages reach the contact.

The Flask gateway (test client) with a real store, the fake Graph API, and a fake Rasa on
loopback that serves both the REST channel and `POST /conversations/{id}/trigger_intent`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fakes import FakeGraph, FakeRasaApi, cloud_body, status_body, text_body
from web_support import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    restore_logging,  # noqa: F401  (autouse fixture)
    settings_for,
)
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.integrations.rasa_failures import RasaFailedDeliveryNotifier
from whatsapp_api_integration.settings import SettingsError, build_gateway
from whatsapp_api_integration.web.app import create_app, gateway_state

pytestmark = pytest.mark.timeout(60)

WEBHOOK = "/webhooks/whatsapp/webhook"
GRAPH_TOKEN = "graph-token-for-failure-tests-01"
RASA_TOKEN = "rasa-auth-token-for-tests-01"
PROACTIVE_TOKEN = "proactive-token-for-tests-0001"
INTENT = "whatsapp_delivery_failed"
CONTACT = "5561987654321"
TEMPLATE = {"type": "template", "template": {"name": "retomar", "language": {"code": "pt_BR"}}}


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    server = FakeGraph(token=GRAPH_TOKEN)
    yield server
    server.close()


@pytest.fixture
def rasa() -> Iterator[FakeRasaApi]:
    server = FakeRasaApi([{"recipient_id": "+" + CONTACT, "custom": TEMPLATE}])
    yield server
    server.close()


@pytest.fixture
def make_client(tmp_path: Path, graph: FakeGraph, rasa: FakeRasaApi) -> Iterator[Any]:
    gateways = []

    def factory(**env: str) -> FlaskClient:
        settings = settings_for(
            tmp_path,
            WPP_AUTHORIZATION_TOKEN=GRAPH_TOKEN,
            WPP_API_BASE_URL=graph.url,
            WPP_APP_SECRET=APP_SECRET,
            WPP_PHONE_NUMBER_IDENTIFIER=PHONE_NUMBER_ID,
            RASA_URL=rasa.url,
            **env,
        )
        gateway = build_gateway(settings)
        gateways.append(gateway)
        return create_app(settings, gateway=gateway).test_client()

    yield factory
    for gateway in gateways:
        gateway.close()


def post(client: FlaskClient, body: bytes) -> Any:
    headers = {"X-Hub-Signature-256": sign(body, APP_SECRET), "Content-Type": "application/json"}
    return client.post(WEBHOOK, data=body, headers=headers)


def failed_status(wamid: str, code: int = 131047, recipient: str = CONTACT) -> bytes:
    document = json.loads(status_body(wamid, "failed", recipient))
    status = document["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["errors"] = [
        {
            "code": code,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "more than 24 hours"},
        }
    ]
    return json.dumps(document).encode()


def notifier_of(client: FlaskClient) -> RasaFailedDeliveryNotifier:
    hook = gateway_state(client.application).gateway.on_failed_reply
    assert isinstance(hook, RasaFailedDeliveryNotifier)
    return hook


def answered_reply(client: FlaskClient, graph: FakeGraph) -> str:
    """A message answered by the bot; the wamid WhatsApp gave the reply."""
    assert post(client, text_body("wamid.in.1", "oi")).status_code == 200
    assert gateway_state(client.application).gateway.process_available() == 1
    wamid = "wamid.fake.1"
    assert graph.texts() == ["Você disse: oi"]
    return wamid


def test_a_failed_reply_triggers_the_intent_and_the_bot_answer_is_sent(
    make_client: Any, graph: FakeGraph, rasa: FakeRasaApi
) -> None:
    client = make_client(RASA_FAILED_DELIVERY_INTENT=INTENT, RASA_API_TOKEN=RASA_TOKEN)
    wamid = answered_reply(client, graph)
    assert post(client, failed_status(wamid)).status_code == 200
    notifier_of(client).join()

    (trigger,) = rasa.triggers
    assert trigger.path == f"/conversations/%2B{CONTACT}/trigger_intent?token={RASA_TOKEN}"
    assert trigger.json == {
        "name": INTENT,
        "entities": {
            "whatsapp_failed_message_id": wamid,
            "whatsapp_error_code": 131047,
            "whatsapp_error_title": "Re-engagement message",
            "whatsapp_error_message": "Re-engagement message",
        },
    }
    template = graph.message_bodies[-1]
    assert template["type"] == "template"
    assert template["to"] == CONTACT
    assert template["template"]["name"] == "retomar"

    # Meta delivers at least once: the same status again tells the bot nothing new.
    assert post(client, failed_status(wamid)).status_code == 200
    notifier_of(client).join()
    assert len(rasa.triggers) == 1


def test_statuses_that_are_not_failures_of_our_replies_tell_the_bot_nothing(
    make_client: Any, graph: FakeGraph, rasa: FakeRasaApi
) -> None:
    client = make_client(RASA_FAILED_DELIVERY_INTENT=INTENT)
    wamid = answered_reply(client, graph)
    post(client, status_body(wamid, "delivered"))
    post(client, failed_status("wamid.someone-elses"))  # a message we never sent
    notifier_of(client).join()
    assert rasa.triggers == []


def test_off_by_default(make_client: Any, graph: FakeGraph, rasa: FakeRasaApi) -> None:
    client = make_client()
    assert gateway_state(client.application).gateway.on_failed_reply is None
    wamid = answered_reply(client, graph)
    assert post(client, failed_status(wamid)).status_code == 200
    assert rasa.triggers == []


def test_rasa_refusing_the_intent_is_logged_and_the_webhook_still_gets_200(
    make_client: Any, graph: FakeGraph, rasa: FakeRasaApi, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(RASA_FAILED_DELIVERY_INTENT=INTENT)
    rasa.trigger_answer = (404, {"message": "The intent does not exist in the domain."})
    wamid = answered_reply(client, graph)
    assert post(client, failed_status(wamid)).status_code == 200
    notifier_of(client).join()
    assert len(rasa.triggers) == 1
    assert f"is {INTENT!r} an intent of the domain?" in caplog.text
    assert len(graph.message_bodies) == 1  # only the first reply


def test_the_intent_needs_rasa_url(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RASA_FAILED_DELIVERY_INTENT needs RASA_URL"):
        settings_for(tmp_path, RASA_FAILED_DELIVERY_INTENT=INTENT)


# ---- POST /webhooks/whatsapp/proactive --------------------------------------------------------


def proactive(client: FlaskClient, document: Any, token: str | None = PROACTIVE_TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/webhooks/whatsapp/proactive", json=document, headers=headers)


def test_proactive_sends_are_off_without_their_token(make_client: Any) -> None:
    client = make_client()
    answer = proactive(client, {"recipient_id": "+" + CONTACT, "messages": [{"text": "oi"}]})
    assert answer.status_code == 404
    assert "PROACTIVE_TOKEN" in answer.get_json()["error"]


def test_proactive_send_needs_the_token_and_a_well_formed_request(
    make_client: Any, graph: FakeGraph
) -> None:
    client = make_client(PROACTIVE_TOKEN=PROACTIVE_TOKEN)
    document = {"recipient_id": "+" + CONTACT, "messages": [{"text": "oi"}]}
    assert proactive(client, document, token=None).status_code == 401
    assert proactive(client, document, token="wrong-token").status_code == 401
    bad = proactive(client, {"recipient_id": "+" + CONTACT, "messages": "oi"})
    assert bad.status_code == 400
    assert bad.get_json()["error"].startswith("$.messages")
    assert proactive(client, {"messages": []}).status_code == 400
    unknown = proactive(client, {"recipient_id": "not a contact!", "messages": [{"text": "x"}]})
    assert unknown.status_code == 422
    assert graph.message_bodies == []


def test_proactive_send_goes_to_the_number_whatsapp_gave(
    make_client: Any, graph: FakeGraph
) -> None:
    """With BR_NINTH_DIGIT the bot knows the contact as +5561987654321, but WhatsApp gave
    556187654321: the message goes there, from the number the contact wrote to."""
    client = make_client(PROACTIVE_TOKEN=PROACTIVE_TOKEN, BR_NINTH_DIGIT="true")
    other_number = "999999999999999"
    post(client, cloud_body({"messages": [_text("wamid.x", "556187654321")]}, other_number))
    answer = proactive(
        client,
        {
            "recipient_id": "+5561987654321",
            "messages": [
                {"text": "Lembrete", "buttons": [{"title": "Ok", "payload": "/ok"}]},
            ],
        },
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"sent": 1, "message_ids": ["wamid.fake.1"]}
    (request,) = graph.message_requests
    assert request.path.endswith(f"/{other_number}/messages")
    assert request.json["to"] == "556187654321"
    assert request.json["interactive"]["action"]["buttons"][0]["reply"]["id"] == "/ok"


def test_proactive_send_refused_by_whatsapp_says_so(make_client: Any, graph: FakeGraph) -> None:
    client = make_client(PROACTIVE_TOKEN=PROACTIVE_TOKEN)
    graph.script(FakeGraph.error(131047, "Re-engagement message"))
    answer = proactive(client, {"recipient_id": "+" + CONTACT, "messages": [{"text": "oi"}]})
    assert answer.status_code == 422
    assert "131047" in answer.get_json()["error"]
    conversation = gateway_state(client.application).gateway.conversation(CONTACT)
    assert [entry["state"] for entry in conversation] == ["failed"]


def _text(wamid: str, wa_id: str) -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": wamid,
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": "oi"},
    }
