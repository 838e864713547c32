"""The Django app through Django's real test client and DRF's APIClient: handshake,
signatures, store before ack, duplicates, the worker command answering through the project's
own callable and sending to a fake Graph API on loopback."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client
from django.urls import resolve
from rest_framework.test import APIClient

from fakes import FakeGraph, fake_graph_fixture, text_body  # noqa: F401 (fixtures)
from web_support import wait_until
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.integrations.django import drf, views
from whatsapp_api_integration.integrations.django.runtime import close_gateway
from whatsapp_api_integration.store import Store

WEBHOOK = "/webhooks/whatsapp/webhook"
VERIFY_TOKEN = "verify-token-for-tests-1234"
APP_SECRET = "app-secret-for-tests-abcdef987654"
CONTACT = "5561987654321"


@pytest.fixture
def store_url(settings: Any, tmp_path: Path, fake_graph: FakeGraph) -> str:
    """The project's settings, with the store in `tmp_path` and Graph on loopback."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings.DATABASE_URL = url
    settings.WPP_AUTHORIZATION_TOKEN = fake_graph.token
    settings.WPP_API_BASE_URL = fake_graph.url
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def wamid() -> str:
    return f"wamid.django.{uuid.uuid4().hex}"


def post_signed(client: Client, body: bytes, **headers: str) -> Any:
    headers.setdefault("X-Hub-Signature-256", sign(body, APP_SECRET))
    return client.post(WEBHOOK, data=body, content_type="application/json", headers=headers)


def worker_once() -> str:
    from io import StringIO

    out = StringIO()
    call_command("whatsapp_worker", "--once", stdout=out)
    return out.getvalue()


# ---- the views -----------------------------------------------------------------------------


def test_the_app_urls_serve_drf_views_when_drf_is_installed() -> None:
    assert resolve(WEBHOOK).func.view_class is drf.WebhookAPIView  # type: ignore[attr-defined]
    assert resolve(WEBHOOK + "/").func.view_class is drf.WebhookAPIView  # type: ignore[attr-defined]
    assert resolve("/webhooks/whatsapp/").func.view_class is drf.HealthAPIView  # type: ignore[attr-defined]


@pytest.mark.usefixtures("store_url")
def test_health_answers_200_despite_the_projects_drf_defaults() -> None:
    response = APIClient().get("/webhooks/whatsapp/")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.usefixtures("store_url")
def test_handshake_echoes_the_challenge_as_text() -> None:
    response = APIClient().get(
        WEBHOOK,
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
        HTTP_ACCEPT="text/html",  # DRF's content negotiation must not turn this into a 406
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.usefixtures("store_url")
@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {},
    ],
)
def test_handshake_refuses_anything_else(query: dict[str, str]) -> None:
    assert APIClient().get(WEBHOOK, query).status_code == 403


def test_a_signed_message_is_stored_before_the_200(store: Store) -> None:
    message_id = wamid()
    client = APIClient(enforce_csrf_checks=True)  # CSRF on: the webhook must be exempt
    for _ in range(3):  # the project's AnonRateThrottle (1/day) must not apply either
        response = post_signed(client, text_body(message_id, "oi"), Accept="text/html")
        assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] == "stored"
    # Read through another connection, right after the answer: the row is committed.
    row = store.job_state(message_id)
    assert row is not None
    assert row["state"] == "received"
    assert row["text"] == "oi"


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "sha1=abc", "sha256=deadbeef"],
    ids=["missing", "empty", "wrong", "sha1", "short"],
)
def test_a_bad_signature_gets_401_and_nothing_is_queued(
    store: Store, signature: str | None
) -> None:
    message_id = wamid()
    body = text_body(message_id, "forjado")
    headers = {} if signature is None else {"X-Hub-Signature-256": signature}
    response = APIClient().post(
        WEBHOOK, data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert "X-Hub-Signature-256" in response.json()["error"]
    assert store.job_state(message_id) is None
    assert store.stats().get("received", 0) == 0


def test_the_signature_is_checked_over_the_raw_bytes(store: Store) -> None:
    """Meta signs the bytes it sends (with escaped non-ASCII); a view that parsed and
    re-serialised the JSON would compute another digest."""
    message_id = wamid()
    body = text_body(message_id, "Olá, ação! 👍")
    spaced = body.replace(b'": ', b'":    ')  # same JSON, other bytes
    response = post_signed(APIClient(), spaced)
    assert response.status_code == 200
    row = store.job_state(message_id)
    assert row is not None
    assert row["text"] == "Olá, ação! 👍"


def test_a_malformed_body_gets_400_with_where(store: Store) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": "x"}).encode()
    response = post_signed(APIClient(), body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("entry")


def test_a_body_over_max_body_bytes_gets_413(settings: Any, store: Store) -> None:
    settings.MAX_BODY_BYTES = 2048
    body = text_body(wamid(), "x" * 4096)
    assert post_signed(APIClient(), body).status_code == 413


def test_a_three_megabyte_batch_is_taken_despite_djangos_upload_limit(store: Store) -> None:
    """Django refuses `request.body` over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB); Meta sends
    up to 3 MB in one POST, so the app reads the body under MAX_BODY_BYTES instead."""
    message_id = wamid()
    body = text_body(message_id, "a" * (3 * 1000 * 1000))
    assert len(body) > 2.5 * 1024 * 1024
    assert post_signed(APIClient(), body).status_code == 200
    assert store.job_state(message_id) is not None


# ---- answers -------------------------------------------------------------------------------


def test_a_duplicate_is_answered_once_by_the_projects_callable(
    store: Store, fake_graph: FakeGraph
) -> None:
    from django_project import bot

    message_id = wamid()
    body = text_body(message_id, "quero participar")
    first = post_signed(APIClient(), body)
    second = post_signed(APIClient(), body)
    assert (first.json()["new_messages"], second.json()["duplicates"]) == (1, 1)

    assert "worked 1 job(s)" in worker_once()
    assert "worked 0 job(s)" in worker_once()

    assert [m.message.id for m in bot.ANSWERED if m.message.id == message_id] == [message_id]
    [sent] = fake_graph.message_bodies
    assert sent["to"] == CONTACT
    assert sent["type"] == "interactive"
    interactive = sent["interactive"]
    assert interactive["body"]["text"] == "Olá, Contato 4321! Recebido: quero participar (pt-br)"
    assert [b["reply"]["id"] for b in interactive["action"]["buttons"]] == ["1", "0"]
    assert store.job_state(message_id)["state"] == "answered"  # type: ignore[index]


def test_a_tapped_button_reaches_the_bot_as_its_payload(store: Store) -> None:
    from django_project import bot

    message_id = wamid()
    tap = {
        "from": CONTACT,
        "id": message_id,
        "timestamp": "1750000000",
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "0", "title": "Discordo"}},
    }
    from fakes import messages_body

    assert post_signed(APIClient(), messages_body(tap)).status_code == 200
    worker_once()
    [incoming] = [m for m in bot.ANSWERED if m.message.id == message_id]
    assert incoming.text == "0"  # a falsy payload is kept (the original lost it)
    assert incoming.sender == f"+{CONTACT}"


def test_worker_threads_of_the_web_process_answer_when_workers_is_set(
    settings: Any, store: Store, fake_graph: FakeGraph
) -> None:
    settings.WORKERS = 2
    message_id = wamid()
    assert post_signed(APIClient(), text_body(message_id, "oi")).status_code == 200
    assert wait_until(lambda: len(fake_graph.message_bodies) == 1)
    close_gateway()  # stops the threads
    assert store.job_state(message_id)["state"] == "answered"  # type: ignore[index]


# ---- the plain Django views (DRF not used) -------------------------------------------------


@pytest.mark.urls("django_project.urls_plain")
def test_the_plain_views_do_the_same(store: Store, fake_graph: FakeGraph) -> None:
    assert resolve(WEBHOOK).func.view_class is views.WebhookView  # type: ignore[attr-defined]
    client = Client(enforce_csrf_checks=True)
    assert client.get("/webhooks/whatsapp/").content == b"ok"
    handshake = client.get(
        WEBHOOK, {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "7"}
    )
    assert (handshake.status_code, handshake.content) == (200, b"7")
    assert client.get(WEBHOOK, {"hub.mode": "subscribe"}).status_code == 403

    message_id = wamid()
    body = text_body(message_id, "oi")
    assert post_signed(client, body).status_code == 200
    assert store.job_state(message_id) is not None
    assert post_signed(client, body, **{"X-Hub-Signature-256": "sha256=00"}).status_code == 401
    assert post_signed(client, b"{not json").status_code == 400
    assert post_signed(client, body).json()["duplicates"] == 1
    worker_once()
    assert len(fake_graph.message_bodies) == 1


# ---- when the gateway itself cannot work: 503, never 500 -----------------------------------


def test_an_unreachable_store_gets_503(settings: Any, tmp_path: Path) -> None:
    settings.DATABASE_URL = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'store.db'}"
    response = post_signed(APIClient(), text_body(wamid(), "oi"))
    assert response.status_code == 503
    assert response.json() == {"error": "store unavailable, retry later"}


def test_invalid_settings_get_503_and_a_system_check_error(settings: Any) -> None:
    settings.WORKERS = "muitos"
    response = post_signed(APIClient(), text_body(wamid(), "oi"))
    assert response.status_code == 503
    errors = [m for m in checks.run_checks() if m.id == "whatsapp_gateway.E001"]
    assert [m.msg for m in errors] == ["WORKERS: expected a whole number ≥ 0, got 'muitos'"]


def test_settings_of_a_type_django_cannot_mean_are_named(settings: Any) -> None:
    settings.WPP_VERIFY_TOKEN = ["a", "list"]
    errors = [m.msg for m in checks.run_checks() if m.id == "whatsapp_gateway.E001"]
    assert errors == [
        "WPP_VERIFY_TOKEN (Django settings): expected a string, number or boolean, got list"
    ]


# ---- the project's own database ------------------------------------------------------------


def test_migrate_builds_the_store_in_the_projects_database(
    django_db_blocker: Any, settings: Any
) -> None:
    from io import StringIO

    from django.db import connections

    project_db = Path(settings.DATABASES["default"]["NAME"])
    out = StringIO()
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=1, stdout=out)
        connections.close_all()  # no Django connection outlives the test
    assert "WhatsApp gateway store: migrations at" in out.getvalue()
    with sqlite3.connect(project_db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"auth_user", "inbound_messages", "webhook_bodies", "alembic_version"} <= tables

    check = StringIO()
    call_command("whatsapp_migrate", "--check", stdout=check)
    assert str(project_db) in check.getvalue()

    # And the webhook stores there, with nothing configured but the project's database.
    message_id = wamid()
    assert post_signed(APIClient(), text_body(message_id, "oi")).status_code == 200
    with sqlite3.connect(project_db) as connection:
        stored = connection.execute(
            "SELECT count(*) FROM inbound_messages WHERE wamid = ?", (message_id,)
        ).fetchone()
    assert stored == (1,)


# ---- ASGI, commands, checks, sandbox -------------------------------------------------------


def test_the_webhook_under_asgi(store: Store) -> None:
    """Django's AsyncClient goes through the ASGI handler, which runs the sync views in a
    thread; the body is read from the ASGI request the same way."""
    import asyncio

    from django.test import AsyncClient

    message_id = wamid()
    body = text_body(message_id, "oi")
    response = asyncio.run(
        AsyncClient().post(
            WEBHOOK,
            data=body,
            content_type="application/json",
            headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
        )
    )
    assert response.status_code == 200
    assert response.json()["new_messages"] == 1
    assert store.job_state(message_id) is not None


def test_the_worker_command_names_an_invalid_setting(settings: Any) -> None:
    from django.core.management import CommandError

    settings.MAX_ATTEMPTS = 0
    with pytest.raises(CommandError, match=r"MAX_ATTEMPTS: expected a whole number ≥ 1, got '0'"):
        call_command("whatsapp_worker", "--once")


def test_check_deploy_lists_what_production_lacks(settings: Any, tmp_path: Path) -> None:
    settings.DATABASE_URL = f"sqlite:///{tmp_path / 'store.db'}"
    deploy = {
        m.msg.split(":")[0]
        for m in checks.run_checks(include_deployment_checks=True)
        if m.id == "whatsapp_gateway.W002"
    }
    assert deploy == {
        "WPP_AUTHORIZATION_TOKEN (Cloud API) or SERPRO_CLIENT_ID + SERPRO_CLIENT_SECRET"
    }
    assert not [m for m in checks.run_checks() if m.id == "whatsapp_gateway.W002"]


@pytest.mark.urls("django_project.urls_sandbox")
def test_the_sandbox_conversation_shows_what_the_bot_answered(
    settings: Any, tmp_path: Path
) -> None:
    settings.DATABASE_URL = f"sqlite:///{tmp_path / 'store.db'}"  # no token: sandbox
    message_id = wamid()
    assert post_signed(APIClient(), text_body(message_id, "oi")).status_code == 200
    worker_once()
    response = Client().get(f"/sandbox/conversations/{CONTACT}")
    assert response.status_code == 200
    texts = json.dumps(response.json()["messages"], ensure_ascii=False)
    assert "Recebido: oi" in texts

    assert (
        Client(REMOTE_ADDR="203.0.113.9").get(f"/sandbox/conversations/{CONTACT}").status_code
        == 403
    )
    settings.ADMIN_TOKEN = "admin-token-for-tests-99"
    allowed = Client(REMOTE_ADDR="203.0.113.9").get(
        f"/sandbox/conversations/{CONTACT}",
        headers={"Authorization": "Bearer admin-token-for-tests-99"},
    )
    assert allowed.status_code == 200


@pytest.mark.urls("django_project.urls_sandbox")
@pytest.mark.usefixtures("store_url")  # a token: not sandbox
def test_the_sandbox_conversation_is_404_outside_sandbox() -> None:
    assert Client().get(f"/sandbox/conversations/{CONTACT}").status_code == 404


def test_migrate_names_a_store_it_cannot_reach(
    django_db_blocker: Any, settings: Any, tmp_path: Path
) -> None:
    from django.core.management import CommandError
    from django.db import connections

    settings.DATABASE_URL = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'store.db'}"
    with django_db_blocker.unblock():
        try:
            with pytest.raises(CommandError) as raised:
                call_command("migrate", verbosity=0)
        finally:
            connections.close_all()
    assert "the WhatsApp gateway's store at sqlite:///" in str(raised.value)
    assert "could not be migrated" in str(raised.value)
