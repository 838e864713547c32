"""The Rasa channels with Rasa 3.6's real classes, served by a real Sanic app on loopback.

One Sanic 21.12 app can be started per process, so this module serves one for all its tests:
`rasa.core.channels.channel.register` mounts `WhatsAppInput` and `GatewayRestInput` on it
under `/webhooks/`, exactly as `rasa run` does, and `app.ctx.agent` is a stand-in that plays
the example bot's rules and runs its real custom actions (tests/rasa_rules_agent.py). Replies
go to the fake Graph API on loopback. Runs in Rasa's environment (scripts/check-rasa-env).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("rasa", reason="needs Rasa 3.6 (run by scripts/check-rasa-env)")
pytest.importorskip("rasa_sdk", reason="needs rasa_sdk (run by scripts/check-rasa-env)")

from rasa.core.channels.channel import register
from sanic import Sanic

from fake_serpro import CLIENT_ID, CLIENT_SECRET, WABA_ID, FakeSerpro, text_envelope
from fakes import FakeGraph, FakeRasaApi
from rasa_rules_agent import RulesAgent
from web_support import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    REPO_ROOT,
    VERIFY_TOKEN,
    ServerProcess,
    free_port,
    wait_until,
)
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.integrations.rasa import (
    GatewayOutput,
    GatewayRestInput,
    WhatsAppInput,
    WhatsAppOutput,
    channel_settings,
)
from whatsapp_api_integration.settings import SettingsError

pytestmark = [pytest.mark.rasa, pytest.mark.timeout(120)]

EXAMPLE = REPO_ROOT / "examples" / "rasa-bot"
WEBHOOK = "/webhooks/whatsapp/webhook"
GRAPH_TOKEN = "graph-token-for-rasa-tests-0001"
PROACTIVE_TOKEN = "proactive-token-for-tests-0001"
SERPRO_WEBHOOK_TOKEN = "serpro-webhook-token-for-rasa-tests"


@dataclass
class Served:
    url: str
    loop: asyncio.AbstractEventLoop
    agent: RulesAgent
    channel: WhatsAppInput
    rest: GatewayRestInput
    graph: FakeGraph
    rasa_api: FakeRasaApi
    serpro: FakeSerpro

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("rasa-channel")
    graph = FakeGraph(token=GRAPH_TOKEN)
    rasa_api = FakeRasaApi()  # Rasa's own HTTP API, told of failed deliveries
    serpro = FakeSerpro(clock=time.time)
    settings = channel_settings(
        {
            "wpp_verify_token": VERIFY_TOKEN,
            "wpp_app_secret": APP_SECRET,
            "wpp_authorization_token": GRAPH_TOKEN,
            "wpp_api_base_url": graph.url,
            "wpp_phone_number_identifier": PHONE_NUMBER_ID,
            "database_url": f"sqlite:///{tmp / 'channel.db'}",
            "workers": 2,
            "rasa_timeout": 20,
            "rasa_url": rasa_api.url,
            "rasa_failed_delivery_intent": "whatsapp_delivery_failed",
            "serpro_client_id": CLIENT_ID,
            "serpro_client_secret": CLIENT_SECRET,
            "serpro_waba_id": WABA_ID,
            "serpro_api_base_url": serpro.url,
            "serpro_webhook_token": SERPRO_WEBHOOK_TOKEN,
        },
        environ={},
        env_files=(),
    )
    agent = RulesAgent(EXAMPLE)
    channel = WhatsAppInput(settings)
    rest = GatewayRestInput()
    app = Sanic(f"rasa_channel_tests_{uuid.uuid4().hex[:8]}")
    app.ctx.agent = agent
    register([channel, rest], app, route="/webhooks/")
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sanic-loop", daemon=True)
    thread.start()

    async def start() -> Any:
        server = await app.create_server(
            host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
        )
        await server.startup()
        await server.before_start()
        await server.after_start()
        return server

    async def stop(server: Any) -> None:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    assert channel.gateway is not None, "after_server_start did not start the channel"
    try:
        yield Served(
            f"http://127.0.0.1:{port}", loop, agent, channel, rest, graph, rasa_api, serpro
        )
    finally:
        asyncio.run_coroutine_threadsafe(stop(server), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        graph.close()
        rasa_api.close()
        serpro.close()


# ---- helpers ----------------------------------------------------------------------------


def contact() -> str:
    """A fresh Brazilian mobile wa_id per test, so conversations never mix."""
    return "55619" + str(uuid.uuid4().int)[:8]


def webhook_body(wa_id: str, *messages: dict[str, Any], name: str = "Maria") -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": list(messages),
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document).encode()


def text(wa_id: str, body: str) -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": body},
    }


def tap(wa_id: str, reply_id: str, title: str, kind: str = "button_reply") -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1750000000",
        "type": "interactive",
        "interactive": {"type": kind, kind: {"id": reply_id, "title": title}},
    }


def post(served: Served, body: bytes, *, signed: bool = True) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign(body, APP_SECRET)
    return httpx.post(f"{served.url}{WEBHOOK}", content=body, headers=headers, timeout=30)


def sent_to(served: Served, wa_id: str) -> list[dict[str, Any]]:
    return [body for body in served.graph.message_bodies if body.get("to") == wa_id]


def wait_for_replies(served: Served, wa_id: str, count: int) -> list[dict[str, Any]]:
    assert wait_until(lambda: len(sent_to(served, wa_id)) >= count, timeout=60), sent_to(
        served, wa_id
    )
    return sent_to(served, wa_id)


def shown(body: dict[str, Any]) -> str:
    """A reply as the contact sees it, in one line."""
    if body["type"] == "text":
        return str(body["text"]["body"])
    if body["type"] == "interactive":
        interactive = body["interactive"]
        action = interactive["action"]
        titles = [b["reply"]["title"] for b in action.get("buttons", [])]
        titles += [r["title"] for s in action.get("sections", []) for r in s["rows"]]
        return f"{interactive['body']['text']} [{' | '.join(titles)}]"
    return json.dumps(body)


# ---- settings from credentials.yml --------------------------------------------------------


def test_credentials_block_first_environment_as_fallback() -> None:
    settings = channel_settings(
        {"wpp_verify_token": "from-credentials-1234", "workers": 3, "br_ninth_digit": True},
        environ={"WPP_VERIFY_TOKEN": "from-env-1234", "WPP_APP_SECRET": "env-secret-123456"},
        env_files=(),
    )
    assert settings.wpp_verify_token == "from-credentials-1234"
    assert settings.wpp_app_secret == "env-secret-123456"
    assert settings.workers == 3
    assert settings.br_ninth_digit is True


def test_a_misspelt_credentials_key_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError) as caught:
        channel_settings({"wpp_verify_tokn": "x"}, environ={}, env_files=())
    assert "'wpp_verify_tokn' is not a setting" in str(caught.value)


def test_from_credentials_builds_the_channel_rasa_registers() -> None:
    channel = WhatsAppInput.from_credentials({"workers": "1"})
    assert isinstance(channel, WhatsAppInput)
    assert channel.name() == "whatsapp"
    assert isinstance(channel.get_output_channel(), WhatsAppOutput)


def test_secrets_stay_out_of_rasas_logs(caplog: pytest.LogCaptureFixture) -> None:
    token = "rasa-auth-token-for-log-test-99"
    WhatsAppInput(channel_settings({"rasa_api_token": token}, environ={}, env_files=()))
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").info(
        'HTTP Request: POST http://rasa/conversations/%%2B55/trigger_intent?token=%s "200"', token
    )
    access = logging.getLogger("sanic.access")
    access.info(
        "", extra={"request": "GET /webhooks/whatsapp/webhook?hub.verify_token=v3ry-s3cret&x=1"}
    )
    assert token not in caplog.text
    assert "trigger_intent?token=****" in caplog.text
    assert [r.__dict__["request"] for r in caplog.records if r.name == "sanic.access"] == [
        "GET /webhooks/whatsapp/webhook?hub.verify_token=****&x=1"
    ]


# ---- the webhook ------------------------------------------------------------------------


def test_health_and_handshake(served: Served) -> None:
    assert httpx.get(f"{served.url}/webhooks/whatsapp/").text == "ok"
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    answer = httpx.get(f"{served.url}{WEBHOOK}", params=params)
    assert (answer.status_code, answer.text) == (200, "42")
    params["hub.verify_token"] = "wrong"
    assert httpx.get(f"{served.url}{WEBHOOK}", params=params).status_code == 403


def test_forged_malformed_and_oversized_bodies_get_4xx(served: Served) -> None:
    wa_id = contact()
    assert post(served, webhook_body(wa_id, text(wa_id, "oi")), signed=False).status_code == 401
    malformed = post(served, b'{"object": "whatsapp_business_account", "entry": 7}')
    assert malformed.status_code == 400
    assert "entry" in malformed.json()["error"]
    huge = b"{" + b" " * (served.channel.settings.max_body_bytes + 10) + b"}"
    assert post(served, huge).status_code == 413
    assert sent_to(served, wa_id) == []


def test_the_example_flow_over_whatsapp(served: Served) -> None:
    """/start 1, three votes on buttons, the age group in a list, all in the channel."""
    wa_id = contact()
    assert (
        post(served, webhook_body(wa_id, text(wa_id, "/start 1"), name="Joana")).status_code == 200
    )
    replies = wait_for_replies(served, wa_id, 2)
    assert shown(replies[0]) == "Olá, Joana! Vamos participar da conversa *Mobilidade no bairro*."
    assert replies[1]["interactive"]["type"] == "button"
    assert shown(replies[1]).endswith("[Concordar | Discordar | Pular]")
    vote_ids = [b["reply"]["id"] for b in replies[1]["interactive"]["action"]["buttons"]]
    assert vote_ids == ['/vote{"choice": "1"}', '/vote{"choice": "-1"}', '/vote{"choice": "0"}']

    for number, choice in enumerate(vote_ids, start=1):
        post(served, webhook_body(wa_id, tap(wa_id, choice, "Concordar")))
        replies = wait_for_replies(served, wa_id, 2 + number)
    age = replies[-1]
    assert age["interactive"]["type"] == "list"  # six answers: more than three buttons hold
    rows = age["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows][-1] == "Prefiro não dizer"
    post(served, webhook_body(wa_id, tap(wa_id, rows[-1]["id"], rows[-1]["title"], "list_reply")))
    replies = wait_for_replies(served, wa_id, 6)
    assert shown(replies[-1]).startswith("Pronto, sua participação foi registrada.")

    seen = [m for m in served.agent.received if m.sender_id == f"+{wa_id}"]
    assert [m.text for m in seen][-1] == '/inform_age{"age_group": "0"}'  # the 0 survives
    first = seen[0]
    assert first.input_channel == "whatsapp"
    assert first.metadata["contact_name"] == "Joana"
    assert first.metadata["wa_id"] == wa_id
    assert first.message_id == first.metadata["message_id"]
    assert served.agent.slots[f"+{wa_id}"]["age_group"] == "0"


def test_the_help_menu_is_a_list_and_each_option_answers(served: Served) -> None:
    wa_id = contact()
    post(served, webhook_body(wa_id, text(wa_id, "ajuda")))
    (menu,) = wait_for_replies(served, wa_id, 1)
    assert menu["interactive"]["type"] == "list"
    rows = menu["interactive"]["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == [
        "/help_start",
        "/help_voting",
        "/help_about",
        "/help_privacy",
        "/help_contact",
    ]
    post(served, webhook_body(wa_id, tap(wa_id, rows[1]["id"], rows[1]["title"], "list_reply")))
    replies = wait_for_replies(served, wa_id, 2)
    assert shown(replies[-1]).startswith("Para cada comentário, toque em Concordar")


def test_one_contacts_messages_are_answered_in_order_and_once(served: Served) -> None:
    wa_id = contact()
    messages = [
        text(wa_id, "/start 1"),
        tap(wa_id, '/vote{"choice": "1"}', "Concordar"),
        tap(wa_id, '/vote{"choice": "-1"}', "Discordar"),
    ]
    body = webhook_body(wa_id, *messages)
    first = post(served, body)
    again = post(served, body)  # WhatsApp delivers at least once
    assert first.json()["new_messages"] == 3
    assert again.json()["duplicates"] == 3
    replies = wait_for_replies(served, wa_id, 4)
    assert [shown(r).split("\n")[0] for r in replies] == [
        "Olá, Maria! Vamos participar da conversa *Mobilidade no bairro*.",
        "*A prefeitura deveria criar mais ciclovias.*",
        "*O ônibus deveria passar a cada 10 minutos no horário de pico.*",
        "*As calçadas precisam de rampas de acessibilidade.*",
    ]
    assert served.channel.gateway is not None
    assert wait_until(lambda: served.channel.gateway.store.queue_depth() == 0, timeout=30)
    assert len(sent_to(served, wa_id)) == 4  # the redelivered body was not answered again


def test_a_serpro_contact_is_answered_through_serpro(served: Served) -> None:
    wa_id = contact()
    body = json.dumps(text_envelope(f"wamid.{uuid.uuid4().hex}", "/start 2", wa_id)).encode()
    headers = {"Content-Type": "application/json"}
    assert httpx.post(f"{served.url}{WEBHOOK}", content=body, headers=headers).status_code == 401
    headers["Authorization"] = f"Bearer {SERPRO_WEBHOOK_TOKEN}"
    assert httpx.post(f"{served.url}{WEBHOOK}", content=body, headers=headers).status_code == 200

    def sends() -> list[Any]:
        return [c for c in served.serpro.sends if c.json.get("destinatario") == f"+{wa_id}"]

    assert wait_until(lambda: len(sends()) >= 2, timeout=60), served.serpro.sends
    intro, comment = sends()[:2]
    assert intro.kind == "requisicao/mensagem/texto"
    assert intro.json["body"] == "Olá, Maria! Vamos participar da conversa *Cultura na praça*."
    assert comment.kind == "requisicao/mensagem/interativa-botoes"
    assert [b["titulo"] for b in comment.json["buttons"]] == ["Concordar", "Discordar", "Pular"]
    assert sent_to(served, wa_id) == []  # nothing through the Cloud API
    message = next(m for m in served.agent.received if m.sender_id == f"+{wa_id}")
    assert message.metadata["provider"] == "serpro"


def test_media_reaches_rasa_as_an_intent_with_its_metadata(served: Served) -> None:
    wa_id = contact()
    image = {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1750000000",
        "type": "image",
        "image": {"id": "media-77", "mime_type": "image/jpeg", "sha256": "abc", "caption": "foto"},
    }
    post(served, webhook_body(wa_id, image))
    replies = wait_for_replies(served, wa_id, 1)
    assert shown(replies[0]).startswith("Recebi seu arquivo")
    message = next(m for m in served.agent.received if m.sender_id == f"+{wa_id}")
    assert message.text.startswith("/whatsapp_media{")
    assert json.loads(message.text[len("/whatsapp_media") :])["id"] == "media-77"
    assert message.metadata["message_type"] == "image"


def test_a_bot_not_ready_keeps_the_message_for_later(served: Served) -> None:
    wa_id = contact()
    served.agent.ready = False
    try:
        body = webhook_body(wa_id, text(wa_id, "oi"))
        post(served, body)
        gateway = served.channel.gateway
        assert gateway is not None
        wamid = json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]

        def error_recorded() -> bool:
            state = gateway.store.job_state(wamid)
            return bool(state and state.get("last_error"))

        assert wait_until(error_recorded, timeout=30)
        state = gateway.store.job_state(wamid)
        assert state is not None
        assert "no model loaded" in str(state["last_error"])
        assert state["state"] == "received"  # waiting for a retry, not lost
        assert sent_to(served, wa_id) == []
    finally:
        served.agent.ready = True
    replies = wait_for_replies(served, wa_id, 1)
    assert shown(replies[0]).startswith("Olá! Sou o bot de participação.")


# ---- what Rasa sends on its own -------------------------------------------------------------


def test_a_later_message_on_the_answers_output_channel_is_sent(served: Served) -> None:
    """A reminder fires on the output channel of the message that scheduled it."""
    wa_id = contact()
    post(served, webhook_body(wa_id, text(wa_id, "oi")))
    wait_for_replies(served, wa_id, 1)
    message = next(m for m in served.agent.received if m.sender_id == f"+{wa_id}")
    served.run(
        message.output_channel.send_response(
            message.sender_id, {"text": "Lembrete: a conversa fecha amanhã."}
        )
    )
    replies = sent_to(served, wa_id)
    assert shown(replies[-1]) == "Lembrete: a conversa fecha amanhã."
    assert replies[-1]["to"] == wa_id


def test_trigger_intents_output_channel_sends_every_kind_through_our_builders(
    served: Served,
) -> None:
    wa_id = contact()
    output = served.channel.get_output_channel()
    assert isinstance(output, WhatsAppOutput)
    recipient = f"+{wa_id}"
    served.run(output.send_text_message(recipient, "Nova conversa aberta!"))
    served.run(
        output.send_text_with_buttons(
            recipient,
            "Quer participar?",
            [{"title": "Sim", "payload": "/start 2"}, {"title": "Agora não", "payload": "0"}],
        )
    )
    served.run(output.send_image_url(recipient, "https://example.org/praca.jpg"))
    served.run(output.send_attachment(recipient, "https://example.org/regras.pdf"))
    custom = {
        "type": "interactive",
        "interactive": {
            "type": "location_request_message",
            "body": {"text": "Onde você está?"},
            "action": {"name": "send_location"},
        },
    }
    served.run(output.send_custom_json(recipient, custom))
    bodies = sent_to(served, wa_id)
    assert [b["type"] for b in bodies] == [
        "text",
        "interactive",
        "image",
        "document",
        "interactive",
    ]
    assert [b["reply"]["id"] for b in bodies[1]["interactive"]["action"]["buttons"]] == [
        "/start 2",
        "0",
    ]
    assert bodies[2]["image"] == {"link": "https://example.org/praca.jpg"}
    assert bodies[3]["document"]["filename"] == "regras.pdf"
    assert bodies[4]["interactive"]["type"] == "location_request_message"
    gateway = served.channel.gateway
    assert gateway is not None
    outgoing = [e for e in gateway.store.conversation(wa_id) if e["direction"] == "out"]
    assert len(outgoing) == 5  # each recorded, with no inbound message


def test_a_refused_proactive_send_is_raised_to_rasa(served: Served) -> None:
    wa_id = contact()
    served.graph.script(FakeGraph.error(131026, "Message Undeliverable"))
    output = served.channel.get_output_channel()
    assert isinstance(output, WhatsAppOutput)
    with pytest.raises(Exception, match="131026"):
        served.run(output.send_text_message(f"+{wa_id}", "olá"))


def test_a_failed_reply_reaches_the_bot_and_its_answer_the_contact(served: Served) -> None:
    wa_id = contact()
    post(served, webhook_body(wa_id, text(wa_id, "oi")))
    wait_for_replies(served, wa_id, 1)
    gateway = served.channel.gateway
    assert gateway is not None
    (reply,) = [e for e in gateway.store.conversation(wa_id) if e["direction"] == "out"]
    served.rasa_api.trigger_answer = (
        200,
        {"messages": [{"recipient_id": f"+{wa_id}", "text": "Não consegui te responder antes."}]},
    )
    status = {
        "id": reply["wamid"],
        "status": "failed",
        "timestamp": "1750000001",
        "recipient_id": wa_id,
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": [status],
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }
    assert post(served, json.dumps(document).encode()).status_code == 200
    notifier = gateway.on_failed_reply
    assert notifier is not None
    notifier.join()  # type: ignore[attr-defined]
    trigger = served.rasa_api.triggers[-1]
    assert trigger.path == f"/conversations/%2B{wa_id}/trigger_intent"
    assert trigger.json["name"] == "whatsapp_delivery_failed"
    assert trigger.json["entities"]["whatsapp_error_code"] == 131026
    assert shown(sent_to(served, wa_id)[-1]) == "Não consegui te responder antes."


# ---- the gateway's REST channel ------------------------------------------------------------


def test_rest_channel_keeps_metadata_and_answers(served: Served) -> None:
    sender = f"+{contact()}"
    answer = httpx.post(
        f"{served.url}/webhooks/rest/webhook",
        json={"sender": sender, "message": "oi", "metadata": {"contact_name": "Ana", "x": 1}},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.json()[0]["text"].startswith("Olá! Sou o bot de participação.")
    message = next(m for m in served.agent.received if m.sender_id == sender)
    assert message.metadata == {"contact_name": "Ana", "x": 1}
    assert message.input_channel == "rest"
    assert httpx.get(f"{served.url}/webhooks/rest/").json() == {"status": "ok"}


def test_rest_channel_refuses_bad_requests_clearly(served: Served) -> None:
    url = f"{served.url}/webhooks/rest/webhook"
    assert httpx.post(url, content=b"not json").status_code == 400
    answer = httpx.post(url, json={"message": "oi"})
    assert (answer.status_code, answer.json()) == (400, {"error": "$.sender: expected a string"})


def test_example_answers_a_simulated_contact_through_the_gateway(
    served: Served, tmp_path: Path
) -> None:
    """The gateway shape end to end: `whatsapp-gateway simulate` → the gateway (sandbox) →
    Rasa's REST channel → the example's rules and actions → back; then a message Rasa sends
    on its own comes back through the gateway's proactive endpoint."""
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "RASA_URL": served.url,
        "WORKERS": "2",
        "PROACTIVE_TOKEN": PROACTIVE_TOKEN,
        "RASA_TELEMETRY_ENABLED": "false",
    }
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "whatsapp_api_integration.web.app:create_app()",
        "run",
        "--port",
        str(port),
        "--no-reload",
    ]
    gateway_bin = Path(sys.executable).parent / "whatsapp-gateway"
    wa_id = contact()
    with ServerProcess(tmp_path, env, command=command, port=port) as server:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("WPP_", "RASA_"))}
        environment.update(env)
        result = subprocess.run(
            [
                str(gateway_bin),
                "simulate",
                "/start 1",
                "--from",
                wa_id,
                "--name",
                "Rita",
                "--url",
                server.url,
                "--wait",
                "60",
            ],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stderr + server.log()
        assert "< Olá, Rita! Vamos participar da conversa *Mobilidade no bairro*." in result.stdout
        assert "[Concordar | Discordar | Pular]" in result.stdout

        served.rest.gateway_url = server.url
        served.rest.gateway_token = PROACTIVE_TOKEN
        try:
            output = served.rest.get_output_channel()
            assert isinstance(output, GatewayOutput)
            served.run(output.send_text_message(f"+{wa_id}", "Lembrete: faltam 2 comentários."))
        finally:
            served.rest.gateway_url = None
        conversation = httpx.get(f"{server.url}/sandbox/conversations/{wa_id}").json()
        texts = [
            m.get("body", {}).get("text", {}).get("body")
            for m in conversation["messages"]
            if m["direction"] == "out"
        ]
        assert texts[-1] == "Lembrete: faltam 2 comentários."
