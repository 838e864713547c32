"""The store: migrations, what a body record keeps, concurrency of claims, PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fakes import messages_body, text_body, text_message
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.store import Job, Store
from whatsapp_api_integration.store.schema import metadata, webhook_bodies

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    yield store
    store.close()


def test_the_migrations_build_exactly_the_schema_the_code_uses(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_migrating_twice_is_harmless_and_ready_says_so(store: Store) -> None:
    store.migrate()
    ready, reason = store.ready()
    assert ready
    assert reason.startswith("migrations at ")


def test_an_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    ready, reason = store.ready()
    store.close()
    assert not ready
    assert "database at none" in reason


def test_processes_migrating_one_new_database_at_once_both_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    script = (
        "import sys; from whatsapp_api_integration.store import Store; Store(sys.argv[1]).migrate()"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    assert Store(url).ready()[0]


def test_unsupported_databases_are_refused_with_the_setting_name() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Store("mysql://localhost/db")


def test_a_body_record_keeps_the_body_and_no_secret_header(store: Store) -> None:
    body = text_body("wamid.1", "oi")
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=abc",
        "Authorization": "Bearer secret-token",
    }
    counts = store.accept(
        body=body, headers=headers, provider="cloud_api", messages=[], statuses=[], events=[]
    )
    with store.engine.connect() as connection:
        row = connection.execute(
            sqlalchemy.select(webhook_bodies).where(webhook_bodies.c.id == counts.body_id)
        ).one()
    assert bytes(row.body) == body
    assert row.body_sha256 == hashlib.sha256(body).hexdigest()
    kept = json.loads(row.headers)
    assert kept == {"content-type": "application/json", "x-hub-signature-256": "sha256=abc"}
    assert "secret-token" not in row.headers


def test_a_rejected_body_is_kept_in_part_with_its_length_and_hash(store: Store) -> None:
    body = b"x" * (200 * 1024)
    body_id = store.reject(body=body, headers={}, reason="too large", http_status=413)
    with store.engine.connect() as connection:
        row = connection.execute(
            sqlalchemy.select(webhook_bodies).where(webhook_bodies.c.id == body_id)
        ).one()
    assert len(row.body) == 64 * 1024
    assert row.body_length == len(body)
    assert row.body_sha256 == hashlib.sha256(body).hexdigest()
    assert (row.outcome, row.http_status, row.reason) == ("rejected", 413, "too large")


def test_payload_references_resolve_and_keep_their_first_payload(store: Store) -> None:
    store.save_payload_refs({"ref:abc": "um payload longo"})
    store.save_payload_refs({"ref:abc": "outro"})
    assert store.resolve_payload("ref:abc") == "um payload longo"
    assert store.resolve_payload("ref:unknown") is None


def _claim_all(store: Store, workers: int) -> list[Job]:
    claimed: list[Job] = []
    lock = threading.Lock()
    barrier = threading.Barrier(workers)

    def worker(number: int) -> None:
        barrier.wait()
        while (job := store.claim(f"worker-{number}", lease_seconds=60)) is not None:
            with lock:
                claimed.append(job)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claimed


def _accept_contacts(gateway: Gateway, contacts: int, per_contact: int) -> None:
    for n in range(per_contact):
        batch = [
            text_message(f"wamid.{c}.{n}", f"{c}.{n}", f"55619000{c:05d}") for c in range(contacts)
        ]
        body = messages_body(*batch)
        gateway.accept(body, {}, parse_webhook(body))


def test_concurrent_claims_take_each_contacts_head_once(tmp_path: Path) -> None:
    config = GatewayConfig(database_url=f"sqlite:///{tmp_path / 'claims.db'}", workers=0)
    gateway = Gateway(config, backend=None, senders={})  # type: ignore[arg-type]
    try:
        _accept_contacts(gateway, contacts=20, per_contact=3)
        claimed = _claim_all(gateway.store, workers=6)
    finally:
        gateway.close()
    # Only each contact's first message may be worked while it is in flight.
    assert sorted(job.wamid for job in claimed) == sorted(f"wamid.{c}.0" for c in range(20))


# ---- PostgreSQL (optional) ------------------------------------------------------------------


def test_postgresql_dedupes_and_claims_each_contacts_head_once(postgres_url: str) -> None:
    config = GatewayConfig(database_url=postgres_url, workers=0)
    gateway = Gateway(config, backend=None, senders={})  # type: ignore[arg-type]
    try:
        assert gateway.ready()[0]
        body = text_body("wamid.pg", "oi", "5561911111111")
        results = [gateway.accept(body, {}, parse_webhook(body)) for _ in range(3)]
        assert [r.duplicates for r in results] == [0, 1, 1]
        _accept_contacts(gateway, contacts=20, per_contact=3)
        claimed = _claim_all(gateway.store, workers=6)
        expected = ["wamid.pg", *(f"wamid.{c}.0" for c in range(20))]
        assert sorted(job.wamid for job in claimed) == sorted(expected)
        with gateway.store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
    finally:
        gateway.close()


def test_the_pool_holds_a_connection_per_thread_and_two_more() -> None:
    from whatsapp_api_integration.store.engine import pool_size_for

    assert pool_size_for(http_threads=8, worker_threads=4) == 14  # serve
    assert pool_size_for(http_threads=8, worker_threads=0) == 10  # serve --no-worker
    assert pool_size_for(http_threads=0, worker_threads=8) == 10  # worker


def test_a_postgresql_store_keeps_the_pool_it_was_given(postgres_url: str) -> None:
    store = Store(postgres_url, pool_size=5)
    try:
        assert (store.engine.pool.size(), store.engine.pool._max_overflow) == (5, 2)  # type: ignore[attr-defined]
    finally:
        store.close()
