"""PostgreSQL: a contact's message whose transaction commits after a later one of the same
contact was already claimed must not be worked beside it (DESIGN §10: one at a time, in order).

Two web processes store one contact's two messages at nearly the same time: M1 gets the
smaller id, but its transaction (a big body, a slow disk) commits after M2's. A worker claims
M2 meanwhile (M1 is not visible yet). When M1 commits, nothing of the contact may be claimed
until M2 is done. A trigger that sleeps after M1's insert stands for the slow transaction; the
test waits for that sleep in pg_stat_activity, so no timing decides it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy

from fakes import text_body
from fault_harness import fresh_schema
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig

CONTACT = "5561977776666"


@pytest.fixture(name="postgres_url")
def postgres_url_fixture() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1/test)")
    with fresh_schema(url) as scoped:
        yield scoped


def _slow_insert_of(engine: sqlalchemy.engine.Engine, wamid: str) -> None:
    """Make the transaction that inserts `wamid` sleep after the insert, before its commit."""
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "CREATE FUNCTION slow_insert() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.wamid = '{wamid}' THEN PERFORM pg_sleep(3); END IF; RETURN NEW; "
                "END $$ LANGUAGE plpgsql"
            )
        )
        connection.execute(
            sqlalchemy.text(
                "CREATE TRIGGER slow_insert AFTER INSERT ON inbound_messages "
                "FOR EACH ROW EXECUTE FUNCTION slow_insert()"
            )
        )


def _sleeping(engine: sqlalchemy.engine.Engine) -> bool:
    with engine.connect() as connection:
        count = connection.execute(
            sqlalchemy.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE state = 'active' AND wait_event = 'PgSleep'"
            )
        ).scalar()
    return bool(count)


@pytest.mark.timeout(60)
def test_a_message_committed_late_waits_for_the_later_one_in_flight(postgres_url: str) -> None:
    run = uuid.uuid4().hex[:6]
    first, second = f"wamid.first.{run}", f"wamid.second.{run}"
    web_1 = Gateway(GatewayConfig(database_url=postgres_url, workers=0), None, {})  # type: ignore[arg-type]
    web_2 = Gateway(GatewayConfig(database_url=postgres_url, workers=0), None, {})  # type: ignore[arg-type]
    try:
        _slow_insert_of(web_1.store.engine, first)
        body_1 = text_body(first, "primeira", CONTACT)
        slow = threading.Thread(target=web_1.accept, args=(body_1, {}, parse_webhook(body_1)))
        slow.start()
        deadline = time.monotonic() + 20
        while not _sleeping(web_2.store.engine):
            assert time.monotonic() < deadline, "the first insert never started"
            time.sleep(0.05)
        body_2 = text_body(second, "segunda", CONTACT)
        web_2.accept(body_2, {}, parse_webhook(body_2))
        in_flight = web_2.store.claim("worker-a", 60)
        assert in_flight is not None
        assert in_flight.wamid == second  # the first is not committed yet
        slow.join(30)
        # Now the first is committed, with the smaller id; the second is still in flight.
        beside = web_2.store.claim("worker-b", 60)
        assert beside is None, f"{beside.wamid} claimed while {second} is in flight"
    finally:
        web_1.close()
        web_2.close()
