"""The store's reads for the operator views (recent contacts, statuses by wamid), on SQLite
and, when TEST_DATABASE_URL is set, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import messages_body, text_body, text_message
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.store import StatusRecord

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'views.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = Gateway(GatewayConfig(database_url=url, workers=0), backend=None, senders={})  # type: ignore[arg-type]
    yield opened
    opened.close()


def test_recent_contacts_newest_first_with_their_last_message(gateway: Gateway) -> None:
    for wamid, text, contact in [
        ("wamid.a1", "a1", "5561900000001"),
        ("wamid.b1", "b1", "5561900000002"),
        ("wamid.a2", "a2", "5561900000001"),
    ]:
        body = text_body(wamid, text, contact)
        gateway.accept(body, {}, parse_webhook(body))
    body = messages_body(text_message("wamid.c1", "c1", "5561900000003"))
    gateway.accept(body, {}, parse_webhook(body))
    rows = gateway.store.recent_contacts(limit=2)
    assert [(r["contact_id"], r["text"], r["messages"]) for r in rows] == [
        ("5561900000003", "c1", 1),
        ("5561900000001", "a2", 2),
    ]
    assert all(r["body_id"] for r in rows)


def test_statuses_of_lists_each_wamids_statuses_in_order(gateway: Gateway) -> None:
    store = gateway.store
    for status in ("sent", "delivered", "read"):
        store.record_status(StatusRecord("cloud_api", "wamid.x", status, 1, "5561900000001"))
    failure = ({"code": 131026, "title": "Message Undeliverable"},)
    store.record_status(StatusRecord("cloud_api", "wamid.y", "failed", 1, None, failure))
    found = store.statuses_of(["wamid.x", "wamid.y", "wamid.none"])
    assert [s["status"] for s in found["wamid.x"]] == ["sent", "delivered", "read"]
    assert found["wamid.y"][0]["errors"] == [{"code": 131026, "title": "Message Undeliverable"}]
    assert found["wamid.none"] == []
    assert store.statuses_of([]) == {}


def test_recent_contacts_looks_only_at_the_latest_messages(gateway: Gateway) -> None:
    for n in range(6):
        contact = "5561900000001" if n < 4 else f"556190000001{n}"
        body = text_body(f"wamid.w{n}", f"w{n}", contact)
        gateway.accept(body, {}, parse_webhook(body))
    rows = gateway.store.recent_contacts(window=3)
    assert [(r["contact_id"], r["messages"]) for r in rows] == [
        ("5561900000015", 1),
        ("5561900000014", 1),
        ("5561900000001", 1),
    ]
