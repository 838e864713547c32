"""Everything durable the pipeline reads and writes (DESIGN.md §10), one method per fact.

Each method is one short transaction. Job transitions are fenced by the lease: they name the
owner that claimed the job and change nothing when another worker has taken it back since.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from whatsapp_api_integration.store import engine as engines
from whatsapp_api_integration.store.schema import (
    dead_letters,
    inbound_messages,
    message_statuses,
    outbound_messages,
    webhook_bodies,
    webhook_events,
)
from whatsapp_api_integration.store.schema import payload_refs as payload_refs_table

logger = logging.getLogger(__name__)

FLUSH_MODES = ("all", "webhooks", "none")
_EXPIRED_CHECK_SECONDS = 1.0
# A contact's message in one of these states holds back the contact's later messages.
ACTIVE_STATES = ("received", "processing")
# Headers worth keeping with a body. Never `Authorization`: it carries a secret.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-hub-signature-256")
REJECTED_BODY_LIMIT = 64 * 1024
# Later statuses win; an out-of-order `delivered` does not hide a `read`.
_STATUS_RANK = {"sandbox": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}


@dataclass(frozen=True)
class InboundRecord:
    """One inbound message, as the gateway files it."""

    provider: str
    wamid: str
    phone_number_id: str | None
    contact_key: str
    contact_id: str
    message_type: str
    text: str | None  # None: nothing reaches the backend (state `ignored`)
    timestamp: int | None


@dataclass(frozen=True)
class StatusRecord:
    provider: str
    wamid: str
    status: str
    timestamp: int | None
    recipient_id: str | None
    errors: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class EventRecord:
    """An event that is kept but never answered (`unknown`, `webhook_error`)."""

    kind: str
    provider: str
    phone_number_id: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class AcceptCounts:
    body_id: int
    new_messages: int
    duplicates: int
    ignored: int
    statuses: int
    orphan_statuses: tuple[str, ...]  # their wamids, for the log


@dataclass
class _PendingAccept:
    """A body waiting for its batch's commit (`Store.accept`)."""

    body: bytes
    headers: Mapping[str, str]
    provider: str | None
    messages: Sequence[InboundRecord]
    statuses: Sequence[StatusRecord]
    events: Sequence[EventRecord]
    now: float
    done: bool = False
    result: AcceptCounts | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Job:
    """A claimed inbound message. `attempts` counts this one."""

    id: int
    provider: str
    wamid: str
    body_id: int
    phone_number_id: str | None
    contact_key: str
    contact_id: str
    attempts: int
    responses: list[dict[str, Any]] | None
    owner: str


@dataclass(frozen=True)
class OutboundRecord:
    id: int
    seq: int
    state: str
    wamid: str | None


@dataclass(frozen=True)
class DeadLetter:
    id: int
    inbound_id: int
    provider: str
    wamid: str
    contact_key: str
    text: str | None
    state: str  # the message's state now (`dead`, or another once replayed)
    error: str
    retryable: bool
    attempts: int
    created_at: float
    replayed_at: float | None


_INSERT_BODY = webhook_bodies.insert()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    return {name: lowered[name] for name in KEPT_HEADERS if name in lowered}


class Store:
    """The gateway's database. `Store(url)` connects; `migrate()` brings the schema to head."""

    def __init__(self, url: str, *, flush: str = "webhooks") -> None:
        """`flush` (STORE_FLUSH): which commits wait until the disk has them: `all`,
        `webhooks` (stored bodies: what an ack promises) or `none`; see store/engine.py."""
        if flush not in FLUSH_MODES:
            raise ValueError(
                f"STORE_FLUSH: expected one of {', '.join(FLUSH_MODES)}, got {flush!r}"
            )
        self.url = url
        self.engine, self._lock, self._lock_reads = engines.create_store_engine(url)
        self.dialect = self.engine.dialect.name
        self.flush = flush
        self._claim_queries = _claim_queries(for_update=self.dialect == "postgresql")
        self._insert_ignoring: dict[str, Any] = {}
        self._expired_checked_at = 0.0
        # Group commit of webhook bodies (see `accept`).
        self._accept_queue: list[_PendingAccept] = []
        self._accept_queue_guard = threading.Lock()
        self._accept_leader = threading.Lock()

    # ---- plumbing ---------------------------------------------------------------------------

    def _write(self, *, durable: bool = False) -> Any:
        """A write transaction; `durable` ones (stored webhooks, operator actions) are flushed
        to disk before commit returns unless STORE_FLUSH=none; with `all`, every one is."""
        flushed = self.flush == "all" or (durable and self.flush == "webhooks")
        return engines.write_transaction(self.engine, self._lock, durable=flushed)

    def _read(self) -> Any:
        return engines.read_transaction(self.engine, self._lock, self._lock_reads)

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has `on_conflict_do_nothing` (SQLite and PostgreSQL)."""
        dialect_module = postgresql if self.dialect == "postgresql" else sqlite
        return dialect_module.insert(table)

    def _insert_new(self, connection: Connection, table: Any, values: Mapping[str, Any]) -> bool:
        """Insert unless the row breaks a unique constraint; whether it was written.

        `ON CONFLICT DO NOTHING` on both SQLite and PostgreSQL: the constraint settles races
        between writers. PostgreSQL's drivers may not report a row count for it, so there the
        statement returns the key it wrote (SQLite's dialect on SQLAlchemy 1.4 cannot).
        """
        statement = self._insert_ignoring.get(table.name)
        if statement is None:  # built once: a statement built per call costs more than its SQL
            statement = self._insert(table).on_conflict_do_nothing()
            if self.dialect == "postgresql":
                statement = statement.returning(next(iter(table.primary_key.columns)))
            self._insert_ignoring[table.name] = statement
        result = connection.execute(statement, dict(values))
        if self.dialect == "postgresql":
            return result.first() is not None
        return bool(result.rowcount)

    def migrate(self) -> None:
        engines.upgrade(self.engine, self._lock)

    def ready(self) -> tuple[bool, str]:
        try:
            with self._read() as connection:
                return engines.migration_state(connection)
        except Exception as error:  # any driver error means "not ready", said plainly
            return False, f"database unavailable: {type(error).__name__}: {error}"

    def close(self) -> None:
        self.engine.dispose()

    # ---- bodies and events --------------------------------------------------------------

    def accept(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        provider: str | None,
        messages: Sequence[InboundRecord],
        statuses: Sequence[StatusRecord],
        events: Sequence[EventRecord],
        now: float | None = None,
    ) -> AcceptCounts:
        """Store a webhook body and what it carries; committed and flushed to disk when this
        returns.

        Group commit: bodies that arrive while another batch is being committed wait and are
        then committed together, in one transaction with one flush, by whichever of their
        threads comes first. An idle gateway commits each body alone, at once; a busy one
        pays one flush (milliseconds on a virtual disk) for many bodies. Should a batch
        fail, each of its bodies is tried again alone, so one body's error is its own.
        """
        pending = _PendingAccept(
            body=body,
            headers=headers,
            provider=provider,
            messages=messages,
            statuses=statuses,
            events=events,
            now=time.time() if now is None else now,
        )
        with self._accept_queue_guard:
            self._accept_queue.append(pending)
        with self._accept_leader:
            if not pending.done:  # no batch took it yet: commit all that wait, ours included
                with self._accept_queue_guard:
                    batch, self._accept_queue = self._accept_queue, []
                self._commit_batch(batch)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _commit_batch(self, batch: list[_PendingAccept]) -> None:
        try:
            with self._write(durable=True) as connection:
                results = [self._accept_one(connection, item) for item in batch]
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
            else:
                for item in batch:
                    self._commit_batch([item])
        else:
            for item, result in zip(batch, results, strict=True):
                item.result = result
        for item in batch:
            item.done = True

    def _accept_one(self, connection: Connection, item: _PendingAccept) -> AcceptCounts:
        body, headers, provider, now = item.body, item.headers, item.provider, item.now
        messages, statuses, events = item.messages, item.statuses, item.events
        new = duplicates = ignored = new_statuses = 0
        orphans: list[str] = []
        body_id = self._insert_body(
            connection,
            body=body,
            stored=body,
            headers=headers,
            provider=provider,
            outcome="accepted",
            http_status=200,
            reason=None,
            events=len(messages) + len(statuses) + len(events),
            now=now,
        )
        for message in messages:
            state = "received" if message.text is not None else "ignored"
            values = {
                "provider": message.provider,
                "wamid": message.wamid,
                "body_id": body_id,
                "phone_number_id": message.phone_number_id,
                "contact_key": message.contact_key,
                "contact_id": message.contact_id,
                "message_type": message.message_type,
                "text": message.text,
                "timestamp": message.timestamp,
                "received_at": now,
                "state": state,
                "attempts": 0,
                "available_at": now,
                "finished_at": now if state == "ignored" else None,
            }
            if self._insert_new(connection, inbound_messages, values):
                new += 1
                ignored += state == "ignored"
            else:
                duplicates += 1
        for status in statuses:
            outcome = self._record_status(connection, status, body_id=body_id, now=now)
            if outcome is not None:
                new_statuses += 1
                if outcome == "orphan":
                    orphans.append(status.wamid)
        for record in events:
            connection.execute(
                webhook_events.insert().values(
                    body_id=body_id,
                    kind=record.kind,
                    provider=record.provider,
                    phone_number_id=record.phone_number_id,
                    detail=_dumps(record.detail),
                    received_at=now,
                )
            )
        return AcceptCounts(body_id, new, duplicates, ignored, new_statuses, tuple(orphans))

    def reject(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        reason: str,
        http_status: int,
        now: float | None = None,
    ) -> int:
        """Keep a record of a refused body: its first 64 KiB, its length and its sha256."""
        with self._write(durable=True) as connection:
            return self._insert_body(
                connection,
                body=body,
                stored=body[:REJECTED_BODY_LIMIT],
                headers=headers,
                provider=None,
                outcome="rejected",
                http_status=http_status,
                reason=reason,
                events=0,
                now=time.time() if now is None else now,
            )

    def _insert_body(
        self,
        connection: Connection,
        *,
        body: bytes,
        stored: bytes,
        headers: Mapping[str, str],
        provider: str | None,
        outcome: str,
        http_status: int,
        reason: str | None,
        events: int,
        now: float,
    ) -> int:
        result = connection.execute(
            _INSERT_BODY,
            {
                "received_at": now,
                "provider": provider,
                "outcome": outcome,
                "http_status": http_status,
                "reason": reason,
                "headers": _dumps(kept_headers(headers)),
                "body": stored,
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "events": events,
            },
        )
        primary_key = result.inserted_primary_key
        assert primary_key is not None
        return int(primary_key[0])

    def body(self, body_id: int) -> bytes:
        with self._read() as connection:
            value = connection.execute(
                select(webhook_bodies.c.body).where(webhook_bodies.c.id == body_id)
            ).scalar_one()
        return bytes(value)

    # ---- statuses -------------------------------------------------------------------------

    def _record_status(
        self, connection: Connection, status: StatusRecord, *, body_id: int | None, now: float
    ) -> str | None:
        """'matched', 'orphan', or None for a status already stored."""
        current = connection.execute(
            select(outbound_messages.c.id, outbound_messages.c.status).where(
                outbound_messages.c.wamid == status.wamid
            )
        ).first()
        values = {
            "wamid": status.wamid,
            "status": status.status,
            "provider": status.provider,
            "timestamp": status.timestamp,
            "recipient_id": status.recipient_id,
            "errors": _dumps(list(status.errors)) if status.errors else None,
            "orphan": current is None,
            "body_id": body_id,
            "received_at": now,
        }
        if not self._insert_new(connection, message_statuses, values):
            return None
        if current is None:
            return "orphan"
        if _STATUS_RANK.get(status.status, 0) >= _STATUS_RANK.get(current.status or "", 0):
            connection.execute(
                update(outbound_messages)
                .where(outbound_messages.c.id == current.id)
                .values(status=status.status)
            )
        return "matched"

    def record_status(self, status: StatusRecord, *, now: float | None = None) -> str | None:
        """Store one status outside a webhook (e.g. the sandbox's `sandbox` status)."""
        with self._write() as connection:
            return self._record_status(
                connection, status, body_id=None, now=time.time() if now is None else now
            )

    def statuses(self, wamid: str) -> list[dict[str, Any]]:
        with self._read() as connection:
            rows = connection.execute(
                select(message_statuses)
                .where(message_statuses.c.wamid == wamid)
                .order_by(message_statuses.c.id)
            ).mappings()
            return [dict(row) for row in rows]

    # ---- jobs -----------------------------------------------------------------------------

    def claim(self, owner: str, lease_seconds: float, *, now: float | None = None) -> Job | None:
        """Lease the oldest message that may go to the backend now.

        A message may go when it waits (`received`, its retry time reached) or its worker's
        lease expired, and no earlier message of its contact is still active: that is what
        keeps one contact's messages in order while other contacts proceed in parallel.
        """
        now = time.time() if now is None else now
        expired_first, waiting = self._claim_queries
        queries = (waiting, expired_first)
        if abs(now - self._expired_checked_at) >= _EXPIRED_CHECK_SECONDS:
            # Expired leases are rare: look for them first once a second, and otherwise only
            # when nothing waits (a query less per job). Order holds either way: a contact
            # whose message is still `processing` has none of its later ones claimed.
            self._expired_checked_at = now
            queries = self._claim_queries
        with self._write() as connection:
            row = None
            for query in queries:
                row = connection.execute(query, {"now": now}).mappings().first()
                if row is not None:
                    break
            if row is None:
                return None
            connection.execute(
                _CLAIM, {"b_id": row["id"], "b_owner": owner, "b_expires": now + lease_seconds}
            )
        if row["state"] == "processing":
            logger.warning(
                "job %s (wamid %s) taken back from %s, whose lease expired",
                row["id"],
                row["wamid"],
                row["lease_owner"],
            )
        return Job(
            id=row["id"],
            provider=row["provider"],
            wamid=row["wamid"],
            body_id=row["body_id"],
            phone_number_id=row["phone_number_id"],
            contact_key=row["contact_key"],
            contact_id=row["contact_id"],
            attempts=row["attempts"] + 1,
            responses=json.loads(row["responses"]) if row["responses"] is not None else None,
            owner=owner,
        )

    def _fenced(self, job: Job) -> Any:
        return and_(
            inbound_messages.c.id == job.id,
            inbound_messages.c.state == "processing",
            inbound_messages.c.lease_owner == job.owner,
        )

    def renew_lease(self, job: Job, lease_seconds: float) -> bool:
        """Extend the lease; False when the job is no longer ours."""
        with self._write() as connection:
            result = connection.execute(
                update(inbound_messages)
                .where(self._fenced(job))
                .values(lease_expires_at=time.time() + lease_seconds)
            )
            return bool(result.rowcount)

    def save_responses(self, job: Job, responses: Sequence[Mapping[str, Any]]) -> bool:
        with self._write() as connection:
            result = connection.execute(
                update(inbound_messages)
                .where(self._fenced(job))
                .values(responses=_dumps(list(responses)))
            )
            return bool(result.rowcount)

    def finish(self, job: Job, state: str = "answered") -> bool:
        with self._write() as connection:
            result = connection.execute(
                update(inbound_messages)
                .where(self._fenced(job))
                .values(
                    state=state, lease_owner=None, lease_expires_at=None, finished_at=time.time()
                )
            )
            return bool(result.rowcount)

    def retry_later(self, job: Job, delay: float, error: str) -> bool:
        with self._write() as connection:
            result = connection.execute(
                update(inbound_messages)
                .where(self._fenced(job))
                .values(
                    state="received",
                    available_at=time.time() + delay,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=error,
                )
            )
            return bool(result.rowcount)

    def dead_letter(self, job: Job, error: str, *, retryable: bool) -> int | None:
        """Mark the job dead and file a dead letter; its id, or None if the job is not ours."""
        now = time.time()
        with self._write() as connection:
            result = connection.execute(
                update(inbound_messages)
                .where(self._fenced(job))
                .values(
                    state="dead",
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=error,
                    finished_at=now,
                )
            )
            if not result.rowcount:
                return None
            inserted = connection.execute(
                dead_letters.insert().values(
                    inbound_id=job.id,
                    error=error,
                    retryable=retryable,
                    attempts=job.attempts,
                    created_at=now,
                )
            )
            primary_key = inserted.inserted_primary_key
            assert primary_key is not None
            return int(primary_key[0])

    def replay(self, dead_letter_id: int) -> bool:
        """Put a dead letter's message back in its contact's queue (history kept)."""
        now = time.time()
        with self._write(durable=True) as connection:
            letter = connection.execute(
                select(dead_letters.c.inbound_id, dead_letters.c.replayed_at).where(
                    dead_letters.c.id == dead_letter_id
                )
            ).first()
            if letter is None or letter.replayed_at is not None:
                return False
            result = connection.execute(
                update(inbound_messages)
                .where(
                    inbound_messages.c.id == letter.inbound_id, inbound_messages.c.state == "dead"
                )
                .values(state="received", attempts=0, available_at=now, finished_at=None)
            )
            if not result.rowcount:
                return False
            connection.execute(
                update(dead_letters)
                .where(dead_letters.c.id == dead_letter_id)
                .values(replayed_at=now)
            )
            return True

    def _dead_letter_query(self) -> Any:
        m = inbound_messages
        return select(
            dead_letters,
            m.c.provider,
            m.c.wamid,
            m.c.contact_key,
            m.c.text,
            m.c.state,
        ).join(m, m.c.id == dead_letters.c.inbound_id)

    @staticmethod
    def _dead_letter(row: RowMapping) -> DeadLetter:
        return DeadLetter(
            id=row["id"],
            inbound_id=row["inbound_id"],
            provider=row["provider"],
            wamid=row["wamid"],
            contact_key=row["contact_key"],
            text=row["text"],
            state=row["state"],
            error=row["error"],
            retryable=bool(row["retryable"]),
            attempts=row["attempts"],
            created_at=row["created_at"],
            replayed_at=row["replayed_at"],
        )

    def dead_letters(
        self, *, include_replayed: bool = False, limit: int = 1000
    ) -> list[DeadLetter]:
        query = self._dead_letter_query()
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        with self._read() as connection:
            rows = connection.execute(query.order_by(dead_letters.c.id).limit(limit)).mappings()
            return [self._dead_letter(row) for row in rows]

    def dead_letter_by_id(self, dead_letter_id: int) -> DeadLetter | None:
        query = self._dead_letter_query().where(dead_letters.c.id == dead_letter_id)
        with self._read() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else self._dead_letter(row)

    def job_state(self, wamid: str, provider: str = "cloud_api") -> dict[str, Any] | None:
        with self._read() as connection:
            row = (
                connection.execute(
                    select(inbound_messages).where(
                        inbound_messages.c.provider == provider, inbound_messages.c.wamid == wamid
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    # ---- outgoing messages ----------------------------------------------------------------

    def plan_replies(
        self,
        job: Job,
        *,
        responses: Sequence[Mapping[str, Any]] | None,
        bodies: Sequence[Mapping[str, Any]],
        payload_refs: Mapping[str, str],
        phone_number_id: str | None,
        lease_seconds: float,
    ) -> list[OutboundRecord] | None:
        """Before any send, in one transaction: keep the backend's `responses` (when given),
        the payload references, and one `pending` row per reply not recorded yet; extend the
        lease. The job's replies, in order; None when the job is no longer ours."""
        now = time.time()
        with self._write() as connection:
            fence = {"b_id": job.id, "b_owner": job.owner, "b_expires": now + lease_seconds}
            if responses is None:
                extended = connection.execute(_EXTEND_LEASE, fence)
            else:
                fence["b_responses"] = _dumps(list(responses))
                extended = connection.execute(_EXTEND_LEASE_KEEP_RESPONSES, fence)
            if not extended.rowcount:
                return None
            for ref, payload in payload_refs.items():
                self._insert_new(
                    connection,
                    payload_refs_table,
                    {"ref": ref, "payload": payload, "created_at": now},
                )
            recorded = {
                row.seq: row for row in connection.execute(_RECORDED_REPLIES, {"b_id": job.id})
            }
            replies: list[OutboundRecord] = []
            for seq, body in enumerate(bodies):
                row = recorded.get(seq)
                if row is not None:
                    replies.append(OutboundRecord(row.id, seq, row.state, row.wamid))
                    continue
                inserted = connection.execute(
                    _INSERT_REPLY,
                    {
                        "inbound_id": job.id,
                        "seq": seq,
                        "provider": job.provider,
                        "phone_number_id": phone_number_id,
                        "contact_key": job.contact_key,
                        "contact_id": job.contact_id,
                        "request_body": _dumps(body),
                        "state": "pending",
                        "attempts": 0,
                        "created_at": now,
                    },
                )
                primary_key = inserted.inserted_primary_key
                assert primary_key is not None
                replies.append(OutboundRecord(int(primary_key[0]), seq, "pending", None))
            return replies

    def reply_accepted(
        self,
        job: Job,
        outbound_id: int,
        *,
        wamid: str | None,
        request_id: str | None = None,
        status: str | None = None,
        lease_seconds: float,
        last: bool,
    ) -> bool:
        """Record the provider's id for a reply and, in the same transaction, extend the
        lease or (`last`) mark the job answered. False when the job is no longer ours (the
        id is recorded all the same: the reply did go)."""
        now = time.time()
        with self._write() as connection:
            connection.execute(
                _REPLY_ACCEPTED,
                {
                    "b_id": outbound_id,
                    "b_wamid": wamid,
                    "b_request_id": request_id,
                    "b_status": status,
                    "b_now": now,
                },
            )
            fence: dict[str, Any] = {"b_id": job.id, "b_owner": job.owner}
            if last:
                result = connection.execute(_ANSWERED, {**fence, "b_now": now})
            else:
                result = connection.execute(
                    _EXTEND_LEASE, {**fence, "b_expires": now + lease_seconds}
                )
            return bool(result.rowcount)

    def outbound_failed(self, outbound_id: int, error: str) -> None:
        with self._write() as connection:
            connection.execute(
                update(outbound_messages)
                .where(outbound_messages.c.id == outbound_id)
                .values(state="failed", error=error, attempts=outbound_messages.c.attempts + 1)
            )

    # ---- payload references ---------------------------------------------------------------

    def save_payload_refs(self, refs: Mapping[str, str]) -> None:
        now = time.time()
        with self._write(durable=True) as connection:
            for ref, payload in refs.items():
                self._insert_new(
                    connection,
                    payload_refs_table,
                    {"ref": ref, "payload": payload, "created_at": now},
                )

    def resolve_payload(self, ref: str) -> str | None:
        with self._read() as connection:
            value = connection.execute(
                select(payload_refs_table.c.payload).where(payload_refs_table.c.ref == ref)
            ).scalar()
        return None if value is None else str(value)

    # ---- views ----------------------------------------------------------------------------

    def queue_depth(self) -> int:
        with self._read() as connection:
            return int(
                connection.execute(
                    select(func.count())
                    .select_from(inbound_messages)
                    .where(inbound_messages.c.state.in_(ACTIVE_STATES))
                ).scalar_one()
            )

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._read() as connection:
            for table, prefix in ((inbound_messages, "messages"), (outbound_messages, "outbound")):
                for state, count in connection.execute(
                    select(table.c.state, func.count()).group_by(table.c.state)
                ).all():
                    counts[f"{prefix}_{state}"] = int(count)
            counts["dead_letters"] = int(
                connection.execute(
                    select(func.count())
                    .select_from(dead_letters)
                    .where(dead_letters.c.replayed_at.is_(None))
                ).scalar_one()
            )
            for orphan, count in connection.execute(
                select(message_statuses.c.orphan, func.count()).group_by(message_statuses.c.orphan)
            ).all():
                counts["statuses_orphan" if orphan else "statuses_matched"] = int(count)
        counts["queue_depth"] = counts.get("messages_received", 0)
        counts["processing"] = counts.get("messages_processing", 0)
        return counts

    def conversation(self, contact: str, limit: int = 50) -> list[dict[str, Any]]:
        """A contact's inbound and outbound messages, oldest first (the last `limit`).

        `contact` is a contact key (`provider:phone_number_id:contact`) or the contact's wa_id
        or business-scoped user id.
        """
        by_key = ":" in contact
        m, o = inbound_messages, outbound_messages
        inbound_filter = (m.c.contact_key if by_key else m.c.contact_id) == contact
        outbound_filter = (o.c.contact_key if by_key else o.c.contact_id) == contact
        with self._read() as connection:
            inbound_rows = connection.execute(
                select(m).where(inbound_filter).order_by(m.c.id.desc()).limit(limit)
            ).mappings()
            items = [_inbound_item(row) for row in inbound_rows]
            outbound_rows = connection.execute(
                select(o).where(outbound_filter).order_by(o.c.id.desc()).limit(limit)
            ).mappings()
            items.extend(_outbound_item(row) for row in outbound_rows)
        items.sort(key=lambda item: (item["at"], item["direction"] == "out", item["id"]))
        return items[-limit:]


def _claim_queries(*, for_update: bool) -> tuple[Any, ...]:
    """The queries `Store.claim` tries in turn, built once (`:now` bound at each call).

    Each walks an index in id order and stops at its first hit: leases that expired (rare),
    then messages that wait and are due, whose contact has no earlier message in flight.
    """
    m = inbound_messages
    earlier = inbound_messages.alias("earlier")
    earlier_active = (
        select(earlier.c.id)
        .where(
            earlier.c.contact_key == m.c.contact_key,
            earlier.c.id < m.c.id,
            earlier.c.state.in_(ACTIVE_STATES),
        )
        .exists()
    )
    now = bindparam("now", type_=Float)
    queries = []
    for condition in (
        and_(m.c.state == "processing", m.c.lease_expires_at < now),
        and_(m.c.state == "received", m.c.available_at <= now),
    ):
        query = select(m).where(condition, ~earlier_active).order_by(m.c.id).limit(1)
        if for_update:  # PostgreSQL: rows another transaction is claiming are skipped
            query = query.with_for_update(skip_locked=True, of=m)
        queries.append(query)
    return tuple(queries)


def _inbound_item(row: RowMapping) -> dict[str, Any]:
    return {
        "direction": "in",
        "id": row["id"],
        "at": row["received_at"],
        "provider": row["provider"],
        "wamid": row["wamid"],
        "contact_key": row["contact_key"],
        "type": row["message_type"],
        "text": row["text"],
        "state": row["state"],
        "attempts": row["attempts"],
        "error": row["last_error"],
    }


def _outbound_item(row: RowMapping) -> dict[str, Any]:
    return {
        "direction": "out",
        "id": row["id"],
        "at": row["created_at"],
        "provider": row["provider"],
        "wamid": row["wamid"],
        "contact_key": row["contact_key"],
        "in_reply_to": row["inbound_id"],
        "seq": row["seq"],
        "body": json.loads(row["request_body"]),
        "state": row["state"],
        "status": row["status"],
        "error": row["error"],
    }


# ---- the workers' hot statements, built once --------------------------------------------
# (building a statement per call cost more CPU than running it; `b_` names keep the bound
# parameters apart from the column names)


def _fenced_update() -> Any:
    """UPDATE of a job still leased by its owner (`Store._fenced`, with bound parameters)."""
    m = inbound_messages
    return update(m).where(
        m.c.id == bindparam("b_id"),
        m.c.state == "processing",
        m.c.lease_owner == bindparam("b_owner"),
    )


_CLAIM = (
    update(inbound_messages)
    .where(inbound_messages.c.id == bindparam("b_id"))
    .values(
        state="processing",
        lease_owner=bindparam("b_owner"),
        lease_expires_at=bindparam("b_expires"),
        attempts=inbound_messages.c.attempts + 1,
    )
)
_EXTEND_LEASE = _fenced_update().values(lease_expires_at=bindparam("b_expires"))
_EXTEND_LEASE_KEEP_RESPONSES = _fenced_update().values(
    lease_expires_at=bindparam("b_expires"), responses=bindparam("b_responses")
)
_ANSWERED = _fenced_update().values(
    state="answered", lease_owner=None, lease_expires_at=None, finished_at=bindparam("b_now")
)
_RECORDED_REPLIES = select(
    outbound_messages.c.id,
    outbound_messages.c.seq,
    outbound_messages.c.state,
    outbound_messages.c.wamid,
).where(outbound_messages.c.inbound_id == bindparam("b_id"))
_INSERT_REPLY = outbound_messages.insert()
_REPLY_ACCEPTED = (
    update(outbound_messages)
    .where(outbound_messages.c.id == bindparam("b_id"))
    .values(
        state="accepted",
        wamid=bindparam("b_wamid"),
        request_id=bindparam("b_request_id"),
        status=bindparam("b_status"),
        attempts=outbound_messages.c.attempts + 1,
        accepted_at=bindparam("b_now"),
        error=None,
    )
)
