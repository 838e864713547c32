"""Token buckets in the `rate_buckets` table: the shared state behind outbound pacing.

A bucket holds up to `burst` tokens and gains `rate` tokens a second; a send spends one. Every
process and machine takes its tokens from the same row, in a short transaction that locks it
(`SELECT … FOR UPDATE` on PostgreSQL; SQLite's write transaction is already exclusive), so
the rate holds across all of them.

A taker that finds the bucket empty still gets its token, as a reservation: the bucket goes
below zero and the taker is told how long to wait for its turn. Takers are thus served in the
order they asked, with no retry loop and one round trip each.

Time comes from the database on PostgreSQL (`clock_timestamp()`), so machines whose clocks
disagree still share one bucket correctly; SQLite lives on one machine and uses its clock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from whatsapp_api_integration.store.schema import rate_buckets


@dataclass(frozen=True)
class Grant:
    """Tokens taken from a bucket: `tokens` may be used after `wait` seconds."""

    tokens: int
    wait: float


@dataclass(frozen=True)
class BucketState:
    key: str
    tokens: float  # what the bucket holds now (refilled); negative: sends are queued or paused
    updated_at: float


def _now(connection: Connection) -> float:
    if connection.dialect.name == "postgresql":
        return float(
            connection.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one()
        )
    return time.time()


def _locked_row(connection: Connection, key: str, burst: float, now: float) -> tuple[float, float]:
    """The bucket's (tokens, updated_at), locked until the transaction ends; created full."""
    query = select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(
        rate_buckets.c.key == key
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(rate_buckets)
            .values(key=key, tokens=float(burst), updated_at=now)
            .on_conflict_do_nothing()
        )
        row = connection.execute(query).first()
        assert row is not None
    return float(row.tokens), float(row.updated_at)


def _refilled(tokens: float, updated_at: float, now: float, rate: float, burst: float) -> float:
    # A clock that went back (another machine's, on SQLite never) refills nothing.
    return min(float(burst), tokens + max(0.0, now - updated_at) * rate)


def take(connection: Connection, key: str, wanted: int, *, rate: float, burst: float) -> Grant:
    """Take up to `wanted` tokens that are there now, or reserve one and say how long to wait."""
    now = _now(connection)
    tokens, updated_at = _locked_row(connection, key, burst, now)
    tokens = _refilled(tokens, updated_at, now, rate, burst)
    if tokens >= 1.0:
        granted = max(1, min(wanted, math.floor(tokens)))
        tokens -= granted
        wait = 0.0
    else:
        granted = 1
        tokens -= 1.0
        wait = -tokens / rate
    connection.execute(
        update(rate_buckets).where(rate_buckets.c.key == key).values(tokens=tokens, updated_at=now)
    )
    return Grant(granted, wait)


def pause(connection: Connection, key: str, seconds: float, *, rate: float, burst: float) -> None:
    """Empty the bucket so that no process sends from `key` for `seconds` (Meta said 130429)."""
    now = _now(connection)
    tokens, updated_at = _locked_row(connection, key, burst, now)
    tokens = min(_refilled(tokens, updated_at, now, rate, burst), -seconds * rate)
    connection.execute(
        update(rate_buckets).where(rate_buckets.c.key == key).values(tokens=tokens, updated_at=now)
    )


def states(connection: Connection, *, rate: float, burst: float) -> list[BucketState]:
    """Every bucket as it stands now (refilled), for `whatsapp-gateway status`."""
    now = _now(connection)
    rows = connection.execute(select(rate_buckets).order_by(rate_buckets.c.key)).all()
    return [
        BucketState(
            row.key,
            _refilled(float(row.tokens), float(row.updated_at), now, rate, burst)
            if rate > 0
            else float(row.tokens),
            float(row.updated_at),
        )
        for row in rows
    ]
