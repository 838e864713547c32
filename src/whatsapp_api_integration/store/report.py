"""What `whatsapp-gateway status` shows: the queue, the work in flight, the send rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from whatsapp_api_integration.store import buckets
from whatsapp_api_integration.store.schema import (
    dead_letters,
    inbound_messages,
    outbound_messages,
)

RATE_WINDOWS = (60, 300)  # seconds over which the send rate is averaged


@dataclass(frozen=True)
class NumberRate:
    provider: str
    phone_number_id: str | None
    sent: dict[int, int]  # window (seconds) -> replies accepted in it


@dataclass(frozen=True)
class StatusReport:
    at: float
    waiting: int  # messages waiting for a worker (due now or waiting for a retry)
    due: int  # of those, the ones a worker may take now
    oldest_waiting_seconds: float | None
    in_flight: int  # claimed by a worker whose lease holds
    expired_leases: int  # claimed by a worker that stopped renewing (died): taken back soon
    dead_letters: int  # not replayed
    answered: int
    sent: dict[int, int]  # window (seconds) -> replies accepted in it, all numbers
    numbers: list[NumberRate] = field(default_factory=list)
    buckets: list[buckets.BucketState] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "queue": {
                "waiting": self.waiting,
                "due": self.due,
                "oldest_waiting_seconds": self.oldest_waiting_seconds,
            },
            "in_flight": self.in_flight,
            "expired_leases": self.expired_leases,
            "dead_letters": self.dead_letters,
            "answered": self.answered,
            "send_rate": {
                f"last_{window}s": round(count / window, 3) for window, count in self.sent.items()
            },
            "sent": {f"last_{window}s": count for window, count in self.sent.items()},
            "numbers": [
                {
                    "provider": number.provider,
                    "phone_number_id": number.phone_number_id,
                    "sent": {f"last_{w}s": c for w, c in number.sent.items()},
                }
                for number in self.numbers
            ],
            "buckets": [
                {"key": b.key, "tokens": round(b.tokens, 2), "updated_at": b.updated_at}
                for b in self.buckets
            ],
        }


def _count(connection: Connection, *conditions: Any) -> int:
    query = select(func.count()).select_from(inbound_messages).where(*conditions)
    return int(connection.execute(query).scalar_one())


def gather(connection: Connection, now: float, *, rate: float, burst: float) -> StatusReport:
    m, o = inbound_messages, outbound_messages
    oldest = connection.execute(
        select(m.c.received_at).where(m.c.state == "received").order_by(m.c.id).limit(1)
    ).scalar()
    sent: dict[int, int] = {}
    per_number: dict[tuple[str, str | None], dict[int, int]] = {}
    for window in RATE_WINDOWS:
        rows = connection.execute(
            select(o.c.provider, o.c.phone_number_id, func.count())
            .where(o.c.state == "accepted", o.c.accepted_at >= now - window)
            .group_by(o.c.provider, o.c.phone_number_id)
        ).all()
        sent[window] = sum(int(row[2]) for row in rows)
        for provider, phone_number_id, count in rows:
            per_number.setdefault((provider, phone_number_id), dict.fromkeys(RATE_WINDOWS, 0))[
                window
            ] = int(count)
    return StatusReport(
        at=now,
        waiting=_count(connection, m.c.state == "received"),
        due=_count(connection, m.c.state == "received", m.c.available_at <= now),
        oldest_waiting_seconds=None if oldest is None else max(0.0, now - float(oldest)),
        in_flight=_count(connection, m.c.state == "processing", m.c.lease_expires_at >= now),
        expired_leases=_count(connection, m.c.state == "processing", m.c.lease_expires_at < now),
        dead_letters=int(
            connection.execute(
                select(func.count())
                .select_from(dead_letters)
                .where(dead_letters.c.replayed_at.is_(None))
            ).scalar_one()
        ),
        answered=_count(connection, m.c.state == "answered"),
        sent=sent,
        numbers=[
            NumberRate(provider, phone_number_id, counts)
            for (provider, phone_number_id), counts in sorted(
                per_number.items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ],
        buckets=buckets.states(connection, rate=rate, burst=burst),
    )
