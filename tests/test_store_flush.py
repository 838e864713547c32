"""Group commit of webhook bodies and STORE_FLUSH: which commits wait for the disk."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from fakes import text_body
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import AcceptResult, Gateway, GatewayConfig
from whatsapp_api_integration.store import Store
from whatsapp_api_integration.store.schema import inbound_messages, webhook_bodies
from whatsapp_api_integration.store.store import InboundRecord, _PendingAccept

FULL, NORMAL = 2, 1  # SQLite's PRAGMA synchronous values


def _synchronous(store: Store, *, durable: bool) -> int:
    with store._write(durable=durable) as connection:
        return int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())


@pytest.mark.parametrize(
    ("flush", "webhook", "worker"),
    [("webhooks", FULL, NORMAL), ("all", FULL, FULL), ("none", NORMAL, NORMAL)],
)
def test_sqlite_flushes_the_commits_store_flush_names(
    tmp_path: Path, flush: str, webhook: int, worker: int
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'flush.db'}", flush=flush)
    try:
        # Twice each, in turns: a pooled connection must switch both ways.
        for _ in range(2):
            assert _synchronous(store, durable=True) == webhook
            assert _synchronous(store, durable=False) == worker
    finally:
        store.close()


def test_an_unknown_flush_mode_is_refused_with_the_setting_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STORE_FLUSH"):
        Store(f"sqlite:///{tmp_path / 'flush.db'}", flush="sometimes")


def test_postgresql_skips_the_flush_only_for_workers_commits(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        for durable, expected in ((True, "on"), (False, "off"), (True, "on")):
            with store._write(durable=durable) as connection:
                shown = connection.exec_driver_sql("SHOW synchronous_commit").scalar_one()
            assert shown == expected
    finally:
        store.close()


def test_concurrent_webhooks_are_each_stored_once_with_their_own_counts(tmp_path: Path) -> None:
    config = GatewayConfig(database_url=f"sqlite:///{tmp_path / 'group.db'}", workers=0)
    gateway = Gateway(config, backend=None, senders={})  # type: ignore[arg-type]
    # 12 threads post 40 bodies each; every body is posted by two threads (a redelivery
    # racing the first delivery), so batches hold duplicates of their own members.
    bodies = [text_body(f"wamid.group.{n}", f"m{n}", f"55619{n % 7:08d}") for n in range(240)]
    results: list[AcceptResult] = []
    lock = threading.Lock()

    def post(part: int) -> None:
        for body in bodies[(part % 6) * 40 : (part % 6 + 1) * 40]:
            result = gateway.accept(body, {}, parse_webhook(body))
            with lock:
                results.append(result)

    threads = [threading.Thread(target=post, args=(part,)) for part in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 480
        assert sum(r.new_messages for r in results) == 240
        assert sum(r.duplicates for r in results) == 240
        assert all(r.new_messages + r.duplicates == 1 for r in results)
        assert gateway.stats()["messages_received"] == 240
    finally:
        gateway.close()


def _accept_path_shows(store: Store, query: str) -> object:
    """What `query` answers on the connection the group commit writes with."""
    with store._accept_connection.transaction() as statements:
        row = statements.first(sqlalchemy.text(query), {})
    assert row is not None
    return row[0]


@pytest.mark.parametrize(("flush", "expected"), [("webhooks", FULL), ("none", NORMAL)])
def test_sqlite_group_commit_flushes_unless_store_flush_is_none(
    tmp_path: Path, flush: str, expected: int
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'flush.db'}", flush=flush)
    try:
        store.migrate()
        # A worker's commit between two accepts must not change what the next accept gets.
        for _ in range(2):
            assert _accept_path_shows(store, "PRAGMA synchronous") == expected
            assert _synchronous(store, durable=False) == NORMAL
    finally:
        store.close()


@pytest.mark.parametrize(("flush", "expected"), [("webhooks", "on"), ("none", "off")])
def test_postgresql_group_commit_flushes_unless_store_flush_is_none(
    postgres_url: str, flush: str, expected: str
) -> None:
    store = Store(postgres_url, flush=flush)
    try:
        for _ in range(2):
            assert _accept_path_shows(store, "SHOW synchronous_commit") == expected
    finally:
        store.close()


def _record(wamid: str, contact: str | None = "5561911112222") -> InboundRecord:
    return InboundRecord(
        provider="cloud_api",
        wamid=wamid,
        phone_number_id="123",
        contact_key=contact,  # type: ignore[arg-type]  # None: a row the schema refuses
        contact_id="5561911112222",
        message_type="text",
        text="oi",
        timestamp=1750000000,
    )


def _pending(*records: InboundRecord) -> _PendingAccept:
    body = ",".join(r.wamid for r in records).encode()
    return _PendingAccept(body, {}, "cloud_api", records, [], [], now=1750000000.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'batch.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store(url)
    store.migrate()
    yield store
    store.close()


def test_one_batch_counts_duplicates_among_its_own_bodies(any_store: Store) -> None:
    store = any_store
    store.accept(
        body=b"earlier",
        headers={},
        provider="cloud_api",
        messages=[_record("wamid.b.0")],
        statuses=[],
        events=[],
    )
    batch = [
        _pending(_record("wamid.b.1")),
        _pending(_record("wamid.b.1"), _record("wamid.b.2")),  # a redelivery and a new one
        _pending(_record("wamid.b.0"), _record("wamid.b.3"), _record("wamid.b.3")),
    ]
    store._commit_batch(batch)
    counts = [(item.result.new_messages, item.result.duplicates) for item in batch if item.result]
    assert counts == [(1, 0), (1, 1), (1, 2)]
    assert all(item.done and item.error is None for item in batch)
    with store.engine.connect() as connection:
        stored = connection.execute(
            sqlalchemy.select(inbound_messages.c.wamid, inbound_messages.c.body_id)
        ).all()
    by_wamid = {row.wamid: row.body_id for row in stored}
    assert len(stored) == len(by_wamid) == 4
    assert by_wamid["wamid.b.2"] == batch[1].result.body_id  # type: ignore[union-attr]


def test_a_failing_body_fails_alone_and_its_batch_is_stored(any_store: Store) -> None:
    store = any_store
    batch = [
        _pending(_record("wamid.f.1")),
        _pending(_record("wamid.f.2"), _record("wamid.f.bad", contact=None)),
        _pending(_record("wamid.f.3")),
    ]
    store._commit_batch(batch)
    assert [item.done for item in batch] == [True, True, True]
    assert isinstance(batch[1].error, sqlalchemy.exc.IntegrityError)
    assert batch[1].result is None
    assert [item.result.new_messages for item in (batch[0], batch[2]) if item.result] == [1, 1]
    with store.engine.connect() as connection:
        wamids = set(connection.execute(sqlalchemy.select(inbound_messages.c.wamid)).scalars())
        bodies = connection.execute(sqlalchemy.select(webhook_bodies.c.body)).scalars().all()
    # Nothing of the failing body is kept, not even its first message.
    assert wamids == {"wamid.f.1", "wamid.f.3"}
    assert sorted(bytes(b) for b in bodies) == [b"wamid.f.1", b"wamid.f.3"]


def test_postgresql_group_commit_survives_its_connection_being_cut(postgres_url: str) -> None:
    store = Store(postgres_url)
    admin = Store(postgres_url).engine
    try:
        store.migrate()
        pid = _accept_path_shows(store, "SELECT pg_backend_pid()")
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # At once, before the idle recheck would replace the connection: the write finds it
        # cut at its first statement, and runs again on a new one.
        counts = store.accept(
            body=b"after the cut",
            headers={},
            provider="cloud_api",
            messages=[_record("wamid.cut")],
            statuses=[],
            events=[],
        )
        assert counts.new_messages == 1
        assert _accept_path_shows(store, "SELECT pg_backend_pid()") != pid
    finally:
        admin.dispose()
        store.close()
