"""The Flask host through its test client, with a real gateway on SQLite and the echo bot."""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from flask import Flask
from flask.testing import FlaskClient

from web_support import (
    APP_SECRET,
    CONTACT,
    VERIFY_TOKEN,
    cloud_document,
    message_value,
    restore_logging,  # noqa: F401  (autouse fixture)
    settings_for,
    text_body,
)
from whatsapp_api_integration.backends.echo import EchoBackend
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.providers.sandbox import SandboxSender
from whatsapp_api_integration.settings import Settings, build_gateway
from whatsapp_api_integration.store.schema import webhook_bodies
from whatsapp_api_integration.web.app import create_app, gateway_state

WEBHOOK = "/webhooks/whatsapp/webhook"
CORPUS = Path(__file__).parent / "corpus"

AppFactory = Callable[..., Flask]

SERPRO_BODY = (CORPUS / "serpro_text.json").read_bytes()
SERPRO = {"SERPRO_CLIENT_ID": "5561000000000", "SERPRO_CLIENT_SECRET": "serpro-secret-xyz"}


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    gateways: list[Gateway] = []

    def factory(settings: Settings | None = None, **env: str) -> Flask:
        settings = settings or settings_for(tmp_path, **env)
        gateway = build_gateway(settings)
        gateways.append(gateway)
        return create_app(settings, gateway=gateway)

    factory.gateways = gateways  # type: ignore[attr-defined]
    yield factory
    for gateway in gateways:
        gateway.close()


@pytest.fixture
def client(make_app: AppFactory) -> FlaskClient:
    return make_app().test_client()


def gateway_of(client: FlaskClient) -> Gateway:
    app = client.application
    return gateway_state(app).gateway


def bodies(client: FlaskClient) -> list[dict[str, Any]]:
    """Every stored webhook body record (accepted and rejected), oldest first."""
    engine = sqlalchemy.create_engine(gateway_state(client.application).settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.select(webhook_bodies)).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def replies(client: FlaskClient, contact: str = CONTACT) -> list[dict[str, Any]]:
    gateway = gateway_of(client)
    gateway.process_available()
    return [e for e in gateway.conversation(contact) if e["direction"] == "out"]


def post(client: FlaskClient, body: bytes, **headers: str) -> Any:
    return client.post(WEBHOOK, data=body, headers={"Content-Type": "application/json", **headers})


# ---- handshake -------------------------------------------------------------------------


def test_handshake_echoes_the_challenge_as_text(client: FlaskClient) -> None:
    response = client.get(
        WEBHOOK,
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN[:-1], "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refuses_anything_else(client: FlaskClient, query: dict[str, str]) -> None:
    response = client.get(WEBHOOK, query_string=query)
    assert response.status_code == 403
    assert "1" not in response.get_data(as_text=True)


def test_handshake_refused_when_no_verify_token_is_configured(make_app: AppFactory) -> None:
    client = make_app(WPP_VERIFY_TOKEN="").test_client()
    response = client.get(
        WEBHOOK,
        query_string={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"},
    )
    assert response.status_code == 403


def test_handshake_token_never_reaches_the_log(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.get(
        WEBHOOK,
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "7",
        },
    )
    client.get(
        WEBHOOK,
        query_string={"hub.mode": "subscribe", "hub.verify_token": "guess-1", "hub.challenge": "7"},
    )
    assert VERIFY_TOKEN not in caplog.text
    assert "guess-1" not in caplog.text


# ---- storing and answering -------------------------------------------------------------


def test_a_message_is_stored_then_answered(client: FlaskClient) -> None:
    response = post(client, text_body("olá"))
    assert response.status_code == 200
    assert response.json == {
        "status": "stored",
        "new_messages": 1,
        "duplicates": 0,
        "statuses": 0,
        "ignored": 0,
    }
    # Stored before the 200, answered later by a worker.
    assert [b["outcome"] for b in bodies(client)] == ["accepted"]
    answer = replies(client)
    assert len(answer) == 1
    assert answer[0]["body"]["text"]["body"] == "Você disse: olá"


def test_the_same_body_three_times_is_answered_once(client: FlaskClient) -> None:
    body = text_body("de novo", wamid="wamid.same.1")
    for _ in range(3):
        assert post(client, body).status_code == 200
    assert post(client, body).json["duplicates"] == 1
    assert len(replies(client)) == 1


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda p: p.stem)
def test_every_corpus_body_gets_200(tmp_path: Path, make_app: AppFactory, path: Path) -> None:
    if path.stem.startswith("serpro"):
        app = _sandbox_app_for(make_app, settings_for(tmp_path, **SERPRO))
    else:
        app = make_app()
    response = post(app.test_client(), path.read_bytes())
    assert response.status_code == 200, response.json


def _sandbox_app_for(make_app: AppFactory, settings: Settings) -> Flask:
    """SERPRO configured, but replies recorded by a sandbox sender (no SERPRO server here)."""
    gateway = Gateway(
        GatewayConfig(database_url=settings.database_url, workers=0),
        EchoBackend(),
        {"cloud_api": SandboxSender(), "serpro": SandboxSender(provider="serpro")},
    )
    app = create_app(settings, gateway=gateway)
    make_app.gateways.append(gateway)  # type: ignore[attr-defined]
    return app


def test_a_body_with_nothing_to_answer_gets_200(client: FlaskClient) -> None:
    status_only = (CORPUS / "status_read.json").read_bytes()
    response = post(client, status_only)
    assert response.status_code == 200
    assert response.json["new_messages"] == 0
    assert replies(client) == []


# ---- signature -------------------------------------------------------------------------


@pytest.fixture
def signed_client(make_app: AppFactory) -> FlaskClient:
    return make_app(WPP_APP_SECRET=APP_SECRET).test_client()


def test_a_correctly_signed_body_is_accepted(signed_client: FlaskClient) -> None:
    body = text_body("assinado")
    response = post(signed_client, body, **{"X-Hub-Signature-256": sign(body, APP_SECRET)})
    assert response.status_code == 200


def test_upper_case_hex_is_the_same_digest(signed_client: FlaskClient) -> None:
    body = text_body("maiúsculas")
    digest = sign(body, APP_SECRET).removeprefix("sha256=").upper()
    response = post(signed_client, body, **{"X-Hub-Signature-256": f"sha256={digest}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha1=" + "a" * 40,
        "sha256=" + "a" * 63,
        "sha256=" + "a" * 65,
        "sha256=" + "g" * 64,
        "sha256",
        "OTHER",
    ],
    ids=["missing", "empty", "sha1", "short", "long", "not-hex", "no-digest", "garbage"],
)
def test_a_bad_signature_gets_401_and_is_recorded(
    signed_client: FlaskClient, signature: str | None
) -> None:
    headers = {} if signature is None else {"X-Hub-Signature-256": signature}
    response = post(signed_client, text_body("forjado"), **headers)
    assert response.status_code == 401
    assert "error" in (response.json or {})
    assert [(b["outcome"], b["http_status"]) for b in bodies(signed_client)] == [("rejected", 401)]
    assert replies(signed_client) == []


def test_a_signature_for_another_body_gets_401(signed_client: FlaskClient) -> None:
    genuine = text_body("original")
    forged = text_body("trocado")
    response = post(signed_client, forged, **{"X-Hub-Signature-256": sign(genuine, APP_SECRET)})
    assert response.status_code == 401


def test_a_signature_of_reserialised_json_gets_401(signed_client: FlaskClient) -> None:
    """Meta signs the raw bytes (with escaped unicode); a re-serialised body is another body."""
    document = cloud_document(message_value("ação"))
    raw = json.dumps(document, ensure_ascii=True).encode()
    reserialised = json.dumps(document, ensure_ascii=False).encode()
    headers = {"X-Hub-Signature-256": sign(reserialised, APP_SECRET)}
    assert post(signed_client, raw, **headers).status_code == 401
    headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET)}
    assert post(signed_client, raw, **headers).status_code == 200


def test_empty_app_secret_means_unchecked_with_a_warning(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = make_app(WPP_APP_SECRET="").test_client()
    assert "WPP_APP_SECRET is set but empty" in caplog.text
    assert post(client, text_body("sem segredo")).status_code == 200


def test_a_secret_never_reaches_the_log(
    signed_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = text_body("segredo")
    post(signed_client, body, **{"X-Hub-Signature-256": sign(body, APP_SECRET)})
    post(signed_client, body, **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert APP_SECRET not in caplog.text


# ---- SERPRO's envelope -----------------------------------------------------------------


def test_a_serpro_body_without_serpro_configured_gets_400(
    signed_client: FlaskClient, client: FlaskClient
) -> None:
    assert post(client, SERPRO_BODY).status_code == 400
    assert "SERPRO" in post(client, SERPRO_BODY).json["error"]
    # With WPP_APP_SECRET set and no SERPRO, nothing unsigned can be authentic: 401 first.
    assert post(signed_client, SERPRO_BODY).status_code == 401


def test_serpro_bearer_is_required_when_its_token_is_set(
    tmp_path: Path, make_app: AppFactory
) -> None:
    settings = settings_for(tmp_path, SERPRO_WEBHOOK_TOKEN="serpro-webhook-token-1", **SERPRO)
    client = _sandbox_app_for(make_app, settings).test_client()
    assert post(client, SERPRO_BODY).status_code == 401
    assert post(client, SERPRO_BODY, Authorization="Bearer wrong").status_code == 401
    ok = post(client, SERPRO_BODY, Authorization="Bearer serpro-webhook-token-1")
    assert ok.status_code == 200


def test_serpro_bearer_does_not_open_the_cloud_api_door(
    tmp_path: Path, make_app: AppFactory
) -> None:
    settings = settings_for(
        tmp_path, SERPRO_WEBHOOK_TOKEN="serpro-webhook-token-1", WPP_APP_SECRET=APP_SECRET, **SERPRO
    )
    client = _sandbox_app_for(make_app, settings).test_client()
    cloud = text_body("pela porta errada")
    response = post(client, cloud, Authorization="Bearer serpro-webhook-token-1")
    assert response.status_code == 401
    # ... and Meta's signature does not open SERPRO's.
    signed = post(client, SERPRO_BODY, **{"X-Hub-Signature-256": sign(SERPRO_BODY, APP_SECRET)})
    assert signed.status_code == 401


def test_serpro_without_webhook_token_is_accepted_with_a_warning(
    tmp_path: Path, make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = settings_for(tmp_path, **SERPRO)
    client = _sandbox_app_for(make_app, settings).test_client()
    assert "NOT authenticated" in caplog.text
    assert post(client, SERPRO_BODY).status_code == 200


# ---- size ------------------------------------------------------------------------------


def test_a_declared_length_over_the_limit_gets_413_unread(make_app: AppFactory) -> None:
    client = make_app(MAX_BODY_BYTES="2048").test_client()
    response = post(client, b"{" + b" " * 4096 + b"}")
    assert response.status_code == 413
    assert "2048" in response.json["error"]
    recorded = bodies(client)
    assert [(b["outcome"], b["http_status"], b["body_length"]) for b in recorded] == [
        ("rejected", 413, 0)
    ]


def test_a_streamed_body_over_the_limit_gets_413(make_app: AppFactory) -> None:
    client = make_app(MAX_BODY_BYTES="2048").test_client()

    class Endless(io.RawIOBase):
        """A body that never ends: reading it whole would never return."""

        reads = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            Endless.reads += 1
            buffer[: len(buffer)] = b" " * len(buffer)
            return len(buffer)

    response = client.post(
        WEBHOOK,
        environ_overrides={"wsgi.input": Endless(), "wsgi.input_terminated": True},
        headers={"Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 413
    assert Endless.reads < 10


def test_a_streamed_body_under_the_limit_is_read_whole(client: FlaskClient) -> None:
    response = client.post(
        WEBHOOK,
        environ_overrides={
            "wsgi.input": io.BytesIO(text_body("em partes")),
            "wsgi.input_terminated": True,
        },
        headers={"Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 200


# ---- malformed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "$"),
        (b'{"object": "whatsapp_business_account", "entry": "x"}', "entry"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field":'
            b' "messages", "value": {"messages": [{"id": "w", "type": "text", "timestamp": null,'
            b' "from": "1", "text": {"body": "x"}}]}}]}]}',
            "entry[0].changes[0].value.messages[0].timestamp",
        ),
    ],
)
def test_malformed_gets_400_saying_where(client: FlaskClient, body: bytes, path: str) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert response.json["error"].startswith(f"{path}:"), response.json
    assert bodies(client)[-1]["outcome"] == "rejected"


# ---- the store ---------------------------------------------------------------------------


def test_store_unavailable_gets_503_and_the_next_body_is_stored_when_it_is_back(
    tmp_path: Path, make_app: AppFactory
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{folder / 'gateway.db'}")
    client = app.test_client()
    gateway = gateway_of(client)
    moved = tmp_path / "db-away"
    gateway.store.close()
    folder.rename(moved)  # the database's folder disappears: no connection can be opened
    response = post(client, text_body("durante a queda"))
    assert response.status_code == 503
    assert client.get("/readyz").status_code == 503
    moved.rename(folder)
    assert post(client, text_body("depois da queda")).status_code == 200
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(moved, ignore_errors=True)


class GatewayWithABug(Gateway):
    """A gateway whose storing fails in a way no payload should cause (a bug)."""

    def accept(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug met on this body")


def test_a_bug_on_a_body_gets_400_not_500_and_the_body_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    gateway = GatewayWithABug(
        GatewayConfig(database_url=settings.database_url, workers=0),
        EchoBackend(),
        {"cloud_api": SandboxSender()},
    )
    client = create_app(settings, gateway=gateway).test_client()
    response = post(client, text_body("gatilho"))
    gateway.close()
    assert response.status_code == 400
    assert "RuntimeError" in (response.json or {})["error"]
    assert "a bug met on this body" in caplog.text  # logged with its traceback
    (kept,) = bodies(client)
    assert (kept["outcome"], kept["http_status"]) == ("rejected", 400)
    assert b"gatilho" in kept["body"]


# ---- ops -------------------------------------------------------------------------------


def test_health_routes(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/webhooks/whatsapp/").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert (ready.json or {})["ready"] is True


def test_metrics_count_requests_and_pipeline_work(client: FlaskClient) -> None:
    post(client, text_body("métricas"))
    replies(client)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'whatsapp_http_requests_total{method="POST",route="/webhooks/whatsapp/webhook"' in text
    assert "whatsapp_webhook_received_total" in text
    assert "whatsapp_http_request_duration_seconds_bucket" in text
    assert "whatsapp_queue_depth" in text


def test_sandbox_api_shows_the_conversation(client: FlaskClient) -> None:
    post(client, text_body("mostra"))
    replies(client)
    response = client.get(f"/sandbox/conversations/{CONTACT}")
    assert response.status_code == 200
    directions = [m["direction"] for m in (response.json or {})["messages"]]
    assert directions == ["in", "out"]


def test_sandbox_api_is_for_loopback_or_the_admin_token(make_app: AppFactory) -> None:
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    client = make_app().test_client()
    assert client.get(f"/sandbox/conversations/{CONTACT}", environ_base=remote).status_code == 403
    client = make_app(ADMIN_TOKEN="admin-token-for-tests-42").test_client()
    denied = client.get(f"/sandbox/conversations/{CONTACT}", environ_base=remote)
    assert denied.status_code == 403
    allowed = client.get(
        f"/sandbox/conversations/{CONTACT}",
        environ_base=remote,
        headers={"Authorization": "Bearer admin-token-for-tests-42"},
    )
    assert allowed.status_code == 200


def test_no_sandbox_api_outside_sandbox(make_app: AppFactory) -> None:
    client = make_app(WPP_AUTHORIZATION_TOKEN="EAAG-real-looking-token-123").test_client()
    assert client.get(f"/sandbox/conversations/{CONTACT}").status_code == 404


def test_unknown_routes_answer_json_404(client: FlaskClient) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert "error" in (response.json or {})


@pytest.mark.parametrize(
    "body",
    [
        {"status": "stored", "new_messages": 1, "duplicates": 0, "statuses": 2, "ignored": 0},
        {"error": '$.entry[0]: não é um objeto "válido" </script>'},
        {"error": "store unavailable, retry later"},
    ],
)
def test_webhook_answers_are_written_as_jsonify_writes_them(body: dict[str, Any]) -> None:
    from flask import jsonify

    from whatsapp_api_integration.web.intake import Answer
    from whatsapp_api_integration.web.webhook import json_answer

    with Flask(__name__).app_context():
        response, status = json_answer(Answer(400, body))
        expected = jsonify(body)
    assert status == 400
    assert response.get_data() == expected.get_data()
    assert response.headers["Content-Type"] == expected.headers["Content-Type"]
