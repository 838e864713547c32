"""Group commit of webhook bodies and STORE_FLUSH: which commits wait for the disk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fakes import text_body
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import AcceptResult, Gateway, GatewayConfig
from whatsapp_api_integration.store import Store

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
