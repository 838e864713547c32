"""SERPRO through the whole gateway: its envelope in, the bot's answer out on SERPRO's endpoint,
statuses matched by idRequisicao, the webhook's bearer check, replies routed to the provider the
message came from, webhook registration by CLI and by `register_webhook`, and a real server
started with only SERPRO_* settings and RASA_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from flask.testing import FlaskClient

from fake_serpro import (
    CLIENT_ID,
    CLIENT_SECRET,
    WABA_ID,
    FakeSerpro,
    serpro_envelope,
    text_envelope,
)
from fakes import FakeGraph, FakeRasa
from web_support import (
    APP_SECRET,
    REPO_ROOT,
    ServerProcess,
    restore_logging,  # noqa: F401  (autouse fixture)
    settings_for,
    text_body,
    wait_until,
)
from whatsapp_api_integration.cli import main
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.serpro_api_client import register_webhook
from whatsapp_api_integration.settings import SETTING_NAMES
from whatsapp_api_integration.store.schema import message_statuses, outbound_messages
from whatsapp_api_integration.web.app import create_app, gateway_state

pytestmark = pytest.mark.timeout(120)

WEBHOOK = "/webhooks/whatsapp/webhook"
WEBHOOK_TOKEN = "serpro-webhook-token-for-tests-42"
PUBLIC_URL = "https://bot.exemplo.gov.br/webhooks/whatsapp/webhook"


@pytest.fixture
def serpro() -> Iterator[FakeSerpro]:
    server = FakeSerpro(clock=time.time)
    yield server
    server.close()


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    server = FakeRasa()
    yield server
    server.close()


def serpro_env(serpro: FakeSerpro, **extra: str) -> dict[str, str]:
    return {
        "SERPRO_CLIENT_ID": CLIENT_ID,
        "SERPRO_CLIENT_SECRET": CLIENT_SECRET,
        "SERPRO_WABA_ID": WABA_ID,
        "SERPRO_API_BASE_URL": serpro.url,
        "SERPRO_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        **extra,
    }


def app_client(tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa, **extra: str) -> FlaskClient:
    settings = settings_for(tmp_path, **serpro_env(serpro, RASA_URL=rasa.url, **extra))
    return create_app(settings, start_workers=False).test_client()


def post_serpro(client: FlaskClient, document: dict[str, Any], token: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = token
    return client.post(WEBHOOK, data=json.dumps(document).encode(), headers=headers)


def rows(client: FlaskClient, table: Any) -> list[dict[str, Any]]:
    engine = sqlalchemy.create_engine(gateway_state(client.application).settings.database_url)
    with engine.connect() as connection:
        found = connection.execute(sqlalchemy.select(table)).mappings().all()
    engine.dispose()
    return [dict(row) for row in found]


def test_a_message_reaches_the_bot_and_the_reply_goes_out_on_serpro(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa
) -> None:
    client = app_client(tmp_path, serpro, rasa)
    answer = post_serpro(client, text_envelope("wamid.in.1", "oi"), f"Bearer {WEBHOOK_TOKEN}")
    assert answer.status_code == 200, answer.get_json()
    gateway_state(client.application).gateway.process_available()

    assert rasa.messages[0]["sender"] == "+5561987654321"
    assert rasa.messages[0]["metadata"]["provider"] == "serpro"
    (send,) = serpro.sends
    assert send.kind == "requisicao/mensagem/texto"
    assert send.path.startswith(f"/client/{CLIENT_ID}/v2/")
    assert send.json["destinatario"] == "+5561987654321"
    assert send.json["body"] == "Você disse: oi"
    (reply,) = rows(client, outbound_messages)
    assert reply["provider"] == "serpro"
    assert reply["state"] == "accepted"
    assert reply["request_id"] in serpro.requests_by_id
    assert reply["wamid"] is None  # SERPRO answers a request id only

    # SERPRO's status for it: matched by idRequisicao, which also tells us its wamid.
    delivered = serpro_envelope(
        statuses=[
            {
                "id": "wamid.out.1",
                "status": "delivered",
                "timestamp": str(int(time.time())),
                "recipient_id": "5561987654321",
            }
        ],
        request_id=reply["request_id"],
    )
    assert post_serpro(client, delivered, f"Bearer {WEBHOOK_TOKEN}").status_code == 200
    # A later one carries idRequisicao inside the status item (as third-party code reads it).
    read = serpro_envelope(
        statuses=[
            {
                "id": "wamid.out.1",
                "status": "read",
                "timestamp": str(int(time.time())),
                "idRequisicao": reply["request_id"],
            }
        ]
    )
    assert post_serpro(client, read, f"Bearer {WEBHOOK_TOKEN}").status_code == 200

    (reply,) = rows(client, outbound_messages)
    assert reply["wamid"] == "wamid.out.1"
    assert reply["status"] == "read"
    statuses = rows(client, message_statuses)
    assert [(s["status"], s["orphan"]) for s in statuses] == [
        ("delivered", False),
        ("read", False),
    ]


def test_a_status_for_a_request_we_never_made_is_kept_as_orphan(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa
) -> None:
    client = app_client(tmp_path, serpro, rasa)
    body = serpro_envelope(
        statuses=[{"id": "wamid.x", "status": "sent", "timestamp": "1750000000"}],
        request_id="nao-e-nosso",
    )
    assert post_serpro(client, body, f"Bearer {WEBHOOK_TOKEN}").status_code == 200
    assert [s["orphan"] for s in rows(client, message_statuses)] == [True]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        (f"Basic {WEBHOOK_TOKEN}", 401),
        (f"Bearer {WEBHOOK_TOKEN}x", 401),
        (f"Bearer {WEBHOOK_TOKEN}", 200),
        (f"bearer {WEBHOOK_TOKEN}", 200),
        (WEBHOOK_TOKEN, 200),  # the bare token: how SERPRO sends it back is not documented
    ],
)
def test_the_webhook_token_is_required(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa, authorization: str | None, status: int
) -> None:
    client = app_client(tmp_path, serpro, rasa)
    answer = post_serpro(client, text_envelope("wamid.auth", "oi"), authorization)
    assert answer.status_code == status
    stored = [r["wamid"] for r in rows(client, outbound_messages)]
    assert stored == []  # nothing answered yet in any case (no worker ran)
    if status == 401:
        assert "bearer" in answer.get_json()["error"]


def test_a_reply_goes_out_through_the_provider_its_message_came_from(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa
) -> None:
    graph = FakeGraph(token="graph-token-for-tests-0002")
    try:
        client = app_client(
            tmp_path,
            serpro,
            rasa,
            WPP_AUTHORIZATION_TOKEN=graph.token,
            WPP_API_BASE_URL=graph.url,
            WPP_APP_SECRET=APP_SECRET,
            WPP_PHONE_NUMBER_IDENTIFIER="106540352242922",
        )
        cloud = text_body("pela Meta", wamid="wamid.cloud.1", sender="5561911112222")
        signed = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(cloud, APP_SECRET),
        }
        assert client.post(WEBHOOK, data=cloud, headers=signed).status_code == 200
        via_serpro = text_envelope("wamid.serpro.1", "pelo SERPRO", wa_id="5561933334444")
        assert post_serpro(client, via_serpro, f"Bearer {WEBHOOK_TOKEN}").status_code == 200
        gateway_state(client.application).gateway.process_available()

        assert graph.texts() == ["Você disse: pela Meta"]
        assert serpro.texts() == ["Você disse: pelo SERPRO"]
        assert serpro.sends[0].json["destinatario"] == "+5561933334444"
    finally:
        graph.close()


# ---- webhook registration -------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serpro: FakeSerpro) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in serpro_env(serpro, RASA_WEBHOOK_URL=PUBLIC_URL).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
    return tmp_path


def test_cli_registers_lists_updates_and_deletes_in_both_forms(
    project: Path, serpro: FakeSerpro, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serpro", "webhook", "register"]) == 0
    assert main(["serpro", "webhook", "register", "--form", "text", PUBLIC_URL + "2"]) == 0
    json_form, text_form = serpro.calls_to("webhook", "POST")
    assert json_form.json == {"uri": PUBLIC_URL, "jwtToken": WEBHOOK_TOKEN}
    assert text_form.headers["Content-Type"] == "text/plain"
    assert text_form.body.decode() == PUBLIC_URL + "2"
    err = capsys.readouterr().err
    assert "cannot register SERPRO_WEBHOOK_TOKEN" in err  # text form + token: warned

    assert main(["serpro", "webhook", "list"]) == 0
    out = capsys.readouterr().out
    assert WEBHOOK_TOKEN not in out
    first, second = (line.split() for line in out.strip().splitlines())
    assert first[1:] == [PUBLIC_URL, "jwtToken", "set"]
    assert second[1:] == [PUBLIC_URL + "2", "jwtToken", "unset"]

    assert main(["serpro", "webhook", "update", second[0], PUBLIC_URL, "--no-token"]) == 0
    assert main(["serpro", "webhook", "delete", first[0]]) == 0
    assert [(w["uri"], w["jwtToken"]) for w in serpro.webhooks.values()] == [(PUBLIC_URL, None)]
    assert main(["serpro", "webhook", "delete", "nao-existe"]) == 1
    assert "SERPRO answered 404" in capsys.readouterr().err
    assert main(["serpro", "webhook", "delete"]) == 0
    assert serpro.webhooks == {}
    assert len(serpro.token_calls) == 1  # one token for all these commands, kept in the store


def test_cli_status_and_token(
    project: Path, serpro: FakeSerpro, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serpro", "token"]) == 0
    out = capsys.readouterr().out
    assert "SERPRO accepted the credentials" in out
    assert CLIENT_SECRET not in out
    assert main(["serpro", "status", "nao-existe"]) == 1
    assert "404" in capsys.readouterr().err


def test_cli_says_what_is_missing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RASA_WEBHOOK_URL")
    assert main(["serpro", "webhook", "register"]) == 2
    assert "RASA_WEBHOOK_URL" in capsys.readouterr().err
    monkeypatch.delenv("SERPRO_CLIENT_SECRET")
    monkeypatch.delenv("SERPRO_CLIENT_ID")
    assert main(["serpro", "webhook", "list"]) == 2
    assert "SERPRO_CLIENT_ID" in capsys.readouterr().err


def test_register_webhook_defaults_to_rasa_webhook_url(project: Path, serpro: FakeSerpro) -> None:
    register_webhook()
    register_webhook(form="text")
    json_form, text_form = serpro.calls_to("webhook", "POST")
    assert json_form.json == {"uri": PUBLIC_URL, "jwtToken": WEBHOOK_TOKEN}
    assert text_form.body.decode() == PUBLIC_URL


def test_the_originals_import_works_from_the_repository_root(
    project: Path, serpro: FakeSerpro
) -> None:
    """`from serpro_api_client import register_webhook`, run beside server.py as the original's
    users did, with SERPRO_WEBHOOK_FORM=text (the original's form)."""
    environment = {**os.environ, "SERPRO_WEBHOOK_FORM": "text"}
    environment.pop("SERPRO_WEBHOOK_TOKEN")
    code = "from serpro_api_client import register_webhook; print(register_webhook())"
    finished = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    (call,) = serpro.calls_to("webhook", "POST")
    assert call.headers["Content-Type"] == "text/plain"
    assert call.body.decode() == PUBLIC_URL
    assert "'uri'" in finished.stdout


# ---- a real server with only SERPRO settings ------------------------------------------------


def test_serve_with_only_serpro_settings_and_rasa_url(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa
) -> None:
    env = {
        **serpro_env(serpro),
        "RASA_URL": rasa.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
    }
    with ServerProcess(tmp_path, env) as server:
        body = json.dumps(text_envelope("wamid.served.1", "olá")).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        answer = httpx.post(f"{server.url}{WEBHOOK}", content=body, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert wait_until(lambda: serpro.texts() == ["Você disse: olá"], timeout=30), server.log()
        log = server.log()
    assert "mode SERPRO" in log
    assert CLIENT_SECRET not in log
    assert WEBHOOK_TOKEN not in log


def test_the_flattened_envelope_variant_is_answered_too(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa
) -> None:
    """Seen in one third-party capture: no messaging_product and no metadata object, the
    number's ids at the top level beside SERPRO's webhook_object_id."""
    document = text_envelope("wamid.flat.1", "achatado")
    metadata = document.pop("metadata")
    del document["messaging_product"]
    document.update(metadata, webhook_object_id="65f1c0ffee0000000000beef")
    client = app_client(tmp_path, serpro, rasa)
    assert post_serpro(client, document, f"Bearer {WEBHOOK_TOKEN}").status_code == 200
    gateway_state(client.application).gateway.process_available()
    assert serpro.texts() == ["Você disse: achatado"]
    assert rasa.messages[0]["metadata"]["phone_number_id"] == CLIENT_ID


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("SERPRO_WEBHOOK_FORM", "xml", "json or text"),
        ("SERPRO_MARK_READ_PATH", "/requisicao/../webhook", "a path under"),
        ("SERPRO_MARK_READ_PATH", "https://x", "a path under"),
    ],
)
def test_serpro_settings_are_checked(
    tmp_path: Path, serpro: FakeSerpro, name: str, value: str, problem: str
) -> None:
    from whatsapp_api_integration.settings import SettingsError

    with pytest.raises(SettingsError) as raised:
        settings_for(tmp_path, **serpro_env(serpro, **{name: value}))
    assert any(line.startswith(name) and problem in line for line in raised.value.problems)


def test_serpro_settings_reach_the_client(tmp_path: Path, serpro: FakeSerpro) -> None:
    from whatsapp_api_integration.providers.serpro import SerproClient
    from whatsapp_api_integration.settings import build_senders

    settings = settings_for(
        tmp_path,
        **serpro_env(
            serpro,
            SERPRO_WEBHOOK_FORM="TEXT",
            SERPRO_MARK_READ_PATH="requisicao/informacao-de-leitura",
            SERPRO_PHONE_NUMBER_ID="5500",
        ),
    )
    sender = build_senders(settings)["serpro"]
    assert isinstance(sender, SerproClient)
    assert (sender.webhook_form, sender.mark_read_path) == (
        "text",
        "/requisicao/informacao-de-leitura",
    )
    assert (sender.base_url, sender.phone_number_id, sender.waba_id) == (
        serpro.url,
        "5500",
        WABA_ID,
    )
    sender.close()


def test_cli_sends_a_template_package_and_shows_its_status(
    project: Path, serpro: FakeSerpro, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serpro", "template", "convite", "5561987654321", "+5562911112222"]
    assert main([*argv, "--param", "Maria", "--param", "12/12"]) == 0
    (call,) = serpro.calls_to("requisicao/mensagem/template")
    assert call.json["destinatarios"] == ["+5561987654321", "+5562911112222"]
    assert call.json["wabaId"] == WABA_ID
    assert [p["valor"] for p in call.json["body"]["parametros"]] == ["Maria", "12/12"]
    request_id = capsys.readouterr().out.split("request id ")[1].split()[0]
    assert main(["serpro", "status", request_id]) == 0
    assert json.loads(capsys.readouterr().out)["quantidadeMensagens"] == 2


def test_a_status_naming_the_request_id_as_its_id_is_matched_too(
    tmp_path: Path, serpro: FakeSerpro, rasa: FakeRasa
) -> None:
    """One third-party client reads statuses[].id as SERPRO's request id: match that too."""
    client = app_client(tmp_path, serpro, rasa)
    post_serpro(client, text_envelope("wamid.in.9", "oi"), f"Bearer {WEBHOOK_TOKEN}")
    gateway_state(client.application).gateway.process_available()
    (reply,) = rows(client, outbound_messages)
    body = serpro_envelope(
        statuses=[{"id": reply["request_id"], "status": "sent", "timestamp": "1750000000"}]
    )
    assert post_serpro(client, body, f"Bearer {WEBHOOK_TOKEN}").status_code == 200
    (reply,) = rows(client, outbound_messages)
    assert (reply["status"], reply["wamid"]) == ("sent", None)
    assert [s["orphan"] for s in rows(client, message_statuses)] == [False]
