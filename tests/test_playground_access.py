"""Who may open the playground and the operator views, and what their APIs accept (Flask's
test client, a real gateway on SQLite, the test bot)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from flask import Flask
from flask.testing import FlaskClient

from web_support import (
    APP_SECRET,
    restore_logging,  # noqa: F401  (autouse fixture)
    settings_for,
)
from whatsapp_api_integration.core.signature import verify_signature
from whatsapp_api_integration.pipeline.gateway import Gateway
from whatsapp_api_integration.settings import build_gateway
from whatsapp_api_integration.store.schema import webhook_bodies
from whatsapp_api_integration.web.app import create_app, gateway_state
from whatsapp_api_integration.web.playground import access, startup_banner

ADMIN_TOKEN = "admin-token-for-tests-5f2c9a"
CLOUD_TOKEN = "EAAG-cloud-token-for-tests-0042"
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
CONTACT = "5561987654321"
PAGES = ("/playground", "/ops/")
APIS = (
    "/playground/api/info",
    "/ops/api/overview",
    f"/playground/api/conversation?contact={CONTACT}",
)
LIVE = {"WPP_AUTHORIZATION_TOKEN": CLOUD_TOKEN, "WPP_PHONE_NUMBER_IDENTIFIER": "106540352242922"}

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    gateways: list[Gateway] = []

    def factory(**env: str) -> Flask:
        env.setdefault("ANSWER_BACKEND", "playground_bot:answer")
        settings = settings_for(tmp_path, **env)
        gateway = build_gateway(settings)
        gateways.append(gateway)
        return create_app(settings, gateway=gateway)

    yield factory
    for gateway in gateways:
        gateway.close()


def gateway_of(client: FlaskClient) -> Gateway:
    return gateway_state(client.application).gateway


def json_of(response: Any) -> Any:
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    return body


def conversation(client: FlaskClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json_of(
        client.get(f"/playground/api/conversation?contact={CONTACT}")
    )["messages"]
    return items


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- on and off ----------------------------------------------------------------------------


def test_off_by_default_outside_sandbox(make_app: AppFactory) -> None:
    client = make_app(**LIVE, ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    for path in (*PAGES, *APIS, "/ops/login"):
        assert client.get(path, headers=bearer(ADMIN_TOKEN)).status_code == 404, path


def test_off_when_playground_is_false_even_in_sandbox(make_app: AppFactory) -> None:
    client = make_app(PLAYGROUND="false").test_client()
    for path in (*PAGES, *APIS):
        assert client.get(path).status_code == 404, path


def test_on_in_sandbox_for_loopback_without_a_token(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for path in (*PAGES, *APIS):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert client.get("/ops").status_code in (301, 308)  # to /ops/


def test_off_loopback_without_admin_token_nothing_opens(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for path in PAGES:
        response = client.get(path, environ_base=REMOTE)
        assert response.status_code == 403, path
        assert "ADMIN_TOKEN" in response.get_data(as_text=True)
    for path in APIS:
        response = client.get(path, environ_base=REMOTE)
        assert response.status_code == 401, path
        assert "ADMIN_TOKEN" in json_of(response)["error"]
    assert client.get("/ops/login", environ_base=REMOTE).status_code == 403
    posted = client.post("/ops/login", data={"token": ""}, environ_base=REMOTE)
    assert posted.status_code == 403


@pytest.mark.parametrize(
    "header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"], ids=lambda h: h.lower()
)
def test_a_proxied_request_is_not_loopback(make_app: AppFactory, header: str) -> None:
    """A reverse proxy on the same machine connects from 127.0.0.1 for anyone."""
    client = make_app().test_client()
    assert client.get("/playground", headers={header: "203.0.113.9"}).status_code == 403
    assert client.get("/ops/api/overview", headers={header: "for=1.2.3.4"}).status_code == 401
    sandbox_api = client.get(f"/sandbox/conversations/{CONTACT}", headers={header: "1.2.3.4"})
    assert sandbox_api.status_code == 403


def test_outside_sandbox_the_token_is_needed_even_on_loopback(make_app: AppFactory) -> None:
    client = make_app(**LIVE, PLAYGROUND="true").test_client()  # no ADMIN_TOKEN
    assert client.get("/playground").status_code == 403
    assert client.get("/ops/api/overview").status_code == 401
    client = make_app(**LIVE, PLAYGROUND="true", ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    assert client.get("/playground").status_code == 302
    assert client.get("/ops/api/overview").status_code == 401
    assert client.get("/ops/api/overview", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.get("/playground", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_playground_on_outside_sandbox_without_token_warns(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_app(**LIVE, PLAYGROUND="true")
    assert "ADMIN_TOKEN is not set" in caplog.text


# ---- the admin token -------------------------------------------------------------------------


def test_the_token_in_a_header_opens_the_views_off_loopback(make_app: AppFactory) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    for path in (*PAGES, *APIS):
        assert client.get(path, environ_base=REMOTE, headers=bearer(ADMIN_TOKEN)).status_code == 200
        wrong = client.get(path, environ_base=REMOTE, headers=bearer(ADMIN_TOKEN + "x"))
        assert wrong.status_code in (302, 401), path
        assert client.get(
            path, environ_base=REMOTE, headers={"Authorization": ADMIN_TOKEN}
        ).status_code in (302, 401)


def test_pages_redirect_to_the_login_form_which_sets_a_cookie(make_app: AppFactory) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    redirected = client.get("/playground?x=1", environ_base=REMOTE)
    assert redirected.status_code == 302
    assert redirected.headers["Location"].startswith("/ops/login?next=")
    form = client.get(redirected.headers["Location"], environ_base=REMOTE)
    assert form.status_code == 200
    assert 'name="next" value="/playground?x=1"' in form.get_data(as_text=True)

    wrong = client.post(
        "/ops/login", data={"token": "guess-123", "next": "/playground"}, environ_base=REMOTE
    )
    assert wrong.status_code == 401
    assert "guess-123" not in wrong.get_data(as_text=True)
    assert client.get_cookie(access.COOKIE_NAME) is None

    right = client.post(
        "/ops/login", data={"token": ADMIN_TOKEN, "next": "/playground"}, environ_base=REMOTE
    )
    assert right.status_code == 302
    assert right.headers["Location"] == "/playground"
    set_cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    assert ADMIN_TOKEN not in set_cookie
    assert client.get("/playground", environ_base=REMOTE).status_code == 200
    assert client.get("/ops/api/overview", environ_base=REMOTE).status_code == 200

    out = client.post("/ops/logout", environ_base=REMOTE)
    assert out.status_code == 302
    assert client.get("/ops/api/overview", environ_base=REMOTE).status_code == 401


def test_a_forged_cookie_is_refused(make_app: AppFactory) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    for value in (ADMIN_TOKEN, access.session_value("another-token"), "", "x" * 64):
        client.set_cookie(access.COOKIE_NAME, value)
        assert client.get("/ops/api/overview", environ_base=REMOTE).status_code == 401, value


def test_a_session_ends_when_the_admin_token_changes(make_app: AppFactory) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN + "-new").test_client()
    client.set_cookie(access.COOKIE_NAME, access.session_value(ADMIN_TOKEN))
    assert client.get("/ops/api/overview", environ_base=REMOTE).status_code == 401


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_login_never_redirects_off_site(make_app: AppFactory, target: str) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    response = client.post(
        "/ops/login", data={"token": ADMIN_TOKEN, "next": target}, environ_base=REMOTE
    )
    assert response.headers["Location"] == "/ops/"


def test_no_secret_is_ever_rendered(make_app: AppFactory) -> None:
    secrets = {
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WPP_APP_SECRET": APP_SECRET,
        "WPP_AUTHORIZATION_TOKEN": CLOUD_TOKEN,
    }
    client = make_app(**secrets, PLAYGROUND="true").test_client()
    client.post(
        "/playground/api/messages",
        json={"contact": CONTACT, "text": "oi"},
        headers=bearer(ADMIN_TOKEN),
    )
    shown = ""
    for path in (*PAGES, *APIS, "/ops/login", f"/ops/api/conversation?contact={CONTACT}"):
        shown += client.get(path, headers=bearer(ADMIN_TOKEN)).get_data(as_text=True)
    shown += client.post("/ops/login", data={"token": "wrong"}).get_data(as_text=True)
    for name, value in secrets.items():
        assert value not in shown, name


def test_posts_need_json_so_a_cross_site_form_cannot_send(make_app: AppFactory) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    client.set_cookie(access.COOKIE_NAME, access.session_value(ADMIN_TOKEN))
    for path in ("/playground/api/messages", "/ops/api/dead-letters/1/replay"):
        response = client.post(path, data={"contact": CONTACT, "text": "oi"}, environ_base=REMOTE)
        assert response.status_code == 415, path
    assert gateway_of(client).store.recent_contacts() == []


# ---- what the playground sends -----------------------------------------------------------


def stored_bodies(client: FlaskClient) -> list[dict[str, Any]]:
    engine = sqlalchemy.create_engine(gateway_state(client.application).settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.select(webhook_bodies)).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def test_a_message_goes_through_the_signed_webhook(make_app: AppFactory) -> None:
    client = make_app(WPP_APP_SECRET=APP_SECRET).test_client()
    response = client.post(
        "/playground/api/messages",
        json={"contact": "+55 61 98765-4321", "name": "Ana", "text": "oi"},
    )
    assert response.status_code == 200, response.json
    (stored,) = stored_bodies(client)
    assert stored["outcome"] == "accepted"
    headers = json.loads(stored["headers"])
    assert verify_signature(bytes(stored["body"]), headers["x-hub-signature-256"], APP_SECRET)
    gateway_of(client).process_available()
    items = conversation(client)
    assert [(i["direction"], i.get("display"), i.get("name")) for i in items[:1]] == [
        ("in", "oi", "Ana")
    ]
    assert items[1]["body"]["text"]["body"] == "Você disse: oi"
    assert items[1]["delivery"] == "sent"
    assert items[1]["problems"] == []


def test_a_tap_arrives_as_whatsapp_sends_it(make_app: AppFactory) -> None:
    client = make_app().test_client()
    client.post("/playground/api/messages", json={"contact": CONTACT, "text": "lista"})
    gateway_of(client).process_available()
    response = client.post(
        "/playground/api/messages",
        json={
            "contact": CONTACT,
            "reply": {
                "type": "list_reply",
                "id": "tema_2",
                "title": "Educação",
                "description": "",
                "context": "wamid.x",
            },
        },
    )
    assert response.status_code == 200
    gateway_of(client).process_available()
    items = conversation(client)
    tap = [i for i in items if i["direction"] == "in"][-1]
    assert (tap["type"], tap["text"], tap["display"], tap["quoted"]) == (
        "interactive",
        "tema_2",
        "Educação",
        "wamid.x",
    )
    assert items[-1]["body"]["text"]["body"] == "Você disse: tema_2"


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ([], "$: expected a JSON object"),
        ({"text": "oi"}, "$.contact"),
        ({"contact": "abc", "text": "oi"}, "$.contact: expected a WhatsApp number"),
        ({"contact": "0123", "text": "oi"}, "$.contact"),
        ({"contact": CONTACT}, "$.text: expected a non-empty string"),
        ({"contact": CONTACT, "text": "   "}, "$.text"),
        ({"contact": CONTACT, "text": 5}, "$.text"),
        ({"contact": CONTACT, "reply": "x"}, "$.reply: expected an object"),
        ({"contact": CONTACT, "reply": {"type": "nfm", "id": "1", "title": "a"}}, "$.reply.type"),
        ({"contact": CONTACT, "reply": {"type": "button_reply", "title": "a"}}, "$.reply.id"),
        ({"contact": CONTACT, "text": "x" * 70000}, "over 65536"),
    ],
)
def test_bad_messages_get_a_clear_400(make_app: AppFactory, payload: Any, where: str) -> None:
    client = make_app().test_client()
    response = client.post("/playground/api/messages", json=payload)
    assert response.status_code == 400
    assert where in json_of(response)["error"]
    assert stored_bodies(client) == []


def test_statuses_come_from_whatsapp_outside_sandbox(make_app: AppFactory) -> None:
    client = make_app(**LIVE, PLAYGROUND="true", ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    response = client.post(
        "/playground/api/statuses",
        json={"contact": CONTACT, "status": "read"},
        headers=bearer(ADMIN_TOKEN),
    )
    assert response.status_code == 409


def test_sandbox_statuses_go_through_the_status_path(make_app: AppFactory) -> None:
    client = make_app(WPP_APP_SECRET=APP_SECRET).test_client()
    client.post("/playground/api/messages", json={"contact": CONTACT, "text": "oi"})
    gateway_of(client).process_available()
    assert (
        client.post(
            "/playground/api/statuses", json={"contact": CONTACT, "status": "bogus"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/playground/api/statuses", json={"contact": CONTACT, "status": "read", "wamid": "nope"}
        ).status_code
        == 400
    )
    read = client.post("/playground/api/statuses", json={"contact": CONTACT, "status": "read"})
    assert read.json == {"posted": 3}
    again = client.post("/playground/api/statuses", json={"contact": CONTACT, "status": "read"})
    assert again.json == {"posted": 0}  # each (wamid, status) once
    items = conversation(client)
    assert items[-1]["delivery"] == "read"
    assert [s["status"] for s in items[-1]["statuses"]] == ["sent", "delivered", "read"]
    bodies = stored_bodies(client)
    assert [b["outcome"] for b in bodies] == ["accepted", "accepted"]


def test_a_failed_status_shows_metas_error_in_the_message_path(make_app: AppFactory) -> None:
    client = make_app().test_client()
    client.post("/playground/api/messages", json={"contact": CONTACT, "text": "oi"})
    gateway_of(client).process_available()
    client.post("/playground/api/statuses", json={"contact": CONTACT, "status": "failed"})
    overview = json_of(client.get("/ops/api/overview"))
    key = overview["contacts"][0]["contact_key"]
    answer = client.get("/ops/api/conversation", query_string={"contact": key})
    (message,) = json_of(answer)["messages"]
    assert [s["label"] for s in message["path"]] == ["received", "with the bot", "answered"]
    (reply,) = message["replies"]
    failed = reply["path"][-1]
    assert (failed["label"], failed["state"]) == ("failed", "failed")
    assert failed["detail"].startswith("131026: Message Undeliverable")


def test_replaying_an_unknown_dead_letter_is_404(make_app: AppFactory) -> None:
    client = make_app().test_client()
    assert client.post("/ops/api/dead-letters/99/replay", json={}).status_code == 404


def test_the_start_up_banner_shows_where_to_click() -> None:
    from whatsapp_api_integration.settings import Settings

    banner = startup_banner("0.0.0.0", 5006, Settings())
    assert "http://127.0.0.1:5006/playground" in banner
    assert "http://127.0.0.1:5006/ops/" in banner
    assert "only on this machine" in banner
    live = startup_banner("127.0.0.1", 8000, Settings(wpp_authorization_token=CLOUD_TOKEN))
    assert "Set ADMIN_TOKEN" in live
    assert CLOUD_TOKEN not in live


# ---- a SERPRO-only gateway -------------------------------------------------------------------

SERPRO_ONLY = {
    "SERPRO_CLIENT_ID": "5561000000000",
    "SERPRO_CLIENT_SECRET": "serpro-secret-for-tests-xyz",
    "SERPRO_WEBHOOK_TOKEN": "serpro-webhook-token-for-tests-77",
    "PLAYGROUND": "true",
    "ADMIN_TOKEN": ADMIN_TOKEN,
}


@pytest.fixture
def serpro_client(tmp_path: Path) -> Iterator[FlaskClient]:
    """SERPRO configured, its sends recorded by a sandbox sender (no SERPRO server here)."""
    from whatsapp_api_integration.backends import load_backend
    from whatsapp_api_integration.pipeline.gateway import GatewayConfig
    from whatsapp_api_integration.providers.sandbox import SandboxSender

    settings = settings_for(tmp_path, ANSWER_BACKEND="playground_bot:answer", **SERPRO_ONLY)
    gateway = Gateway(
        GatewayConfig(database_url=settings.database_url, workers=0),
        load_backend(settings.answer_backend, rasa_url=None, timeout=5.0),
        {"serpro": SandboxSender(provider="serpro")},
    )
    client = create_app(settings, gateway=gateway).test_client()
    client.environ_base.update(bearer_environ(ADMIN_TOKEN))
    yield client
    gateway.close()


def bearer_environ(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_on_a_serpro_gateway_the_playground_speaks_serpro(serpro_client: FlaskClient) -> None:
    info = json_of(serpro_client.get("/playground/api/info"))
    assert (info["provider"], info["phone_number_id"]) == ("serpro", "5561000000000")
    for text in ("botões", "lista"):
        response = serpro_client.post(
            "/playground/api/messages", json={"contact": CONTACT, "text": text}
        )
        assert response.status_code == 200, response.json  # SERPRO's bearer was sent
        gateway_of(serpro_client).process_available()
    (buttons, menu) = [i for i in conversation(serpro_client) if i["direction"] == "out"]
    assert buttons["request"]["path"] == "/requisicao/mensagem/interativa-botoes"
    assert buttons["body"]["interactive"]["type"] == "button"
    titles = [b["reply"]["title"] for b in buttons["body"]["interactive"]["action"]["buttons"]]
    assert titles == ["Concordo", "Discordo", "Pular"]
    assert menu["request"]["path"] == "/requisicao/mensagem/interativa-lista"
    action = menu["body"]["interactive"]["action"]
    assert action["button"] == "Opções"
    assert [r["id"] for r in action["sections"][0]["rows"]] == [f"tema_{n}" for n in range(1, 8)]
    assert buttons["problems"] == menu["problems"] == []
    assert all(b["provider"] == "serpro" for b in stored_bodies(serpro_client))


def test_polled_reads_are_logged_at_debug_so_they_do_not_bury_the_log(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app().test_client()
    caplog.set_level("DEBUG", logger="whatsapp_api_integration.access")
    client.get("/playground")
    client.get("/playground/api/info")
    client.get("/ops/api/overview")
    client.post("/playground/api/messages", json={"contact": CONTACT, "text": "oi"})
    levels = {
        record.getMessage().rsplit(" ", 2)[0]: record.levelname
        for record in caplog.records
        if record.name == "whatsapp_api_integration.access"
    }
    assert levels == {
        "GET /playground": "INFO",
        "GET /playground/api/info": "DEBUG",
        "GET /ops/api/overview": "DEBUG",
        "POST /playground/api/messages": "INFO",
    }


def test_guessing_the_token_is_stopped_while_open_sessions_go_on(make_app: AppFactory) -> None:
    app = make_app(ADMIN_TOKEN=ADMIN_TOKEN)
    admin, guesser = app.test_client(), app.test_client()
    admin.post("/ops/login", data={"token": ADMIN_TOKEN}, environ_base=REMOTE)
    for n in range(access.FailureThrottle().limit):
        wrong = guesser.post("/ops/login", data={"token": f"guess-{n}"}, environ_base=REMOTE)
        assert wrong.status_code == 401
    right = guesser.post("/ops/login", data={"token": ADMIN_TOKEN}, environ_base=REMOTE)
    assert right.status_code == 429
    assert "Too many wrong tokens" in right.get_data(as_text=True)
    header = guesser.get("/ops/api/overview", environ_base=REMOTE, headers=bearer(ADMIN_TOKEN))
    assert header.status_code == 429
    assert admin.get("/ops/api/overview", environ_base=REMOTE).status_code == 200


def test_wrong_header_tokens_count_as_guesses(make_app: AppFactory) -> None:
    client = make_app(ADMIN_TOKEN=ADMIN_TOKEN).test_client()
    for n in range(access.FailureThrottle().limit):
        guess = client.get("/ops/api/overview", environ_base=REMOTE, headers=bearer(f"g{n}"))
        assert guess.status_code == 401
    locked = client.get("/ops/api/overview", environ_base=REMOTE, headers=bearer(ADMIN_TOKEN))
    assert locked.status_code == 429


def test_the_throttle_forgets_failures_older_than_its_window() -> None:
    now = [1000.0]
    throttle = access.FailureThrottle(limit=2, window=60.0, clock=lambda: now[0])
    throttle.failed()
    now[0] += 30
    throttle.failed()
    assert throttle.locked()
    now[0] += 30  # the first failure is 60 s old: out of the window
    assert not throttle.locked()
