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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from whatsapp_api_integration.store import buckets, listen, report
from whatsapp_api_integration.store import engine as engines
from whatsapp_api_integration.store.direct import AlchemyStatements, DirectConnection, Statements
from whatsapp_api_integration.store.schema import (
    dead_letters,
    inbound_messages,
    message_statuses,
    outbound_messages,
    provider_tokens,
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
    request_id: str | None = None  # SERPRO's `idRequisicao`: matches when the wamid does not


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
    # New `failed` statuses of messages we sent: (wamid, contact_id of the recipient).
    failed_replies: tuple[tuple[str, str | None], ...] = ()


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
    body: bytes | None = None  # the stored webhook body it came in, read with the claim


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


_INSERT_EVENT = webhook_events.insert()
_NOTIFY_WORK = text("SELECT pg_notify(:channel, '')")
_OUTBOUND_FOR_STATUS = (
    outbound_messages.c.id,
    outbound_messages.c.status,
    outbound_messages.c.wamid,
    outbound_messages.c.request_id,
)
_OUTBOUND_BY_WAMID = select(*_OUTBOUND_FOR_STATUS).where(
    outbound_messages.c.wamid == bindparam("wamid")
)
# SERPRO answers a send with its request id only; the wamid first shows up in a status, beside
# idRequisicao (or, in one third-party reading, as the status id).
_OUTBOUND_BY_REQUEST_ID = (
    select(*_OUTBOUND_FOR_STATUS)
    .where(
        outbound_messages.c.provider == bindparam("provider"),
        outbound_messages.c.request_id.in_([bindparam("request_id"), bindparam("status_id")]),
    )
    .order_by(outbound_messages.c.id)
)
_UPDATE_OUTBOUND = update(outbound_messages).where(
    outbound_messages.c.id == bindparam("outbound_id")
)


# Built once: json.dumps with options builds an encoder per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _dumps(value: Any) -> str:
    return _JSON_ENCODER.encode(value)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    return {name: lowered[name] for name in KEPT_HEADERS if name in lowered}


class Store:
    """The gateway's database. `Store(url)` connects; `migrate()` brings the schema to head."""

    def __init__(self, url: str, *, pool_size: int | None = None, flush: str = "webhooks") -> None:
        """`flush` (STORE_FLUSH): which commits wait until the disk has them: `all`,
        `webhooks` (stored bodies: what an ack promises) or `none`; see store/engine.py."""
        if flush not in FLUSH_MODES:
            raise ValueError(
                f"STORE_FLUSH: expected one of {', '.join(FLUSH_MODES)}, got {flush!r}"
            )
        self.url = url
        self.engine, self._lock, self._lock_reads = engines.create_store_engine(
            url, pool_size=pool_size
        )
        self.dialect = self.engine.dialect.name
        self.flush = flush
        self._claim_queries = _claim_queries(for_update=self.dialect == "postgresql")
        self._insert_ignoring: dict[str, Any] = {}
        self._expired_checked_at = 0.0
        # Group commit of webhook bodies (see `accept`).
        self._accept_queue: list[_PendingAccept] = []
        self._accept_queue_guard = threading.Lock()
        self._accept_leader = threading.Lock()
        # The group commit's own connection; used only by the thread holding _accept_leader.
        self._accept_connection = DirectConnection(self.engine, self._lock, durable=flush != "none")

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
        with self._accept_leader:
            self._accept_connection.close()
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
        On PostgreSQL, a batch with new work notifies the listening workers as it commits.
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

    def _commit_batch(self, batch: list[_PendingAccept], *, reconnected: bool = False) -> None:
        try:
            with self._accept_connection.transaction() as statements:
                results = [self._accept_one(statements, item) for item in batch]
                if self.dialect == "postgresql" and any(
                    r.new_messages > r.ignored for r in results
                ):
                    # Delivered to the listening workers at this commit (store/listen.py):
                    # no transaction of its own per webhook.
                    statements.execute(_NOTIFY_WORK, {"channel": listen.CHANNEL})
        except Exception as error:
            if not reconnected and DirectConnection.lost_before_commit(error):
                # What the pool's pre-ping did for each transaction (PostgreSQL restarted,
                # an idle connection cut): once more, on a new connection.
                self._commit_batch(batch, reconnected=True)
                return
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

    def _accept_one(self, statements: Statements, item: _PendingAccept) -> AcceptCounts:
        body, headers, provider, now = item.body, item.headers, item.provider, item.now
        messages, statuses, events = item.messages, item.statuses, item.events
        new = duplicates = ignored = new_statuses = 0
        orphans: list[str] = []
        failed: list[tuple[str, str | None]] = []
        body_id = self._insert_body(
            statements,
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
            if statements.insert_new(inbound_messages, values):
                new += 1
                ignored += state == "ignored"
            else:
                duplicates += 1
        for status in statuses:
            outcome = self._record_status(statements, status, body_id=body_id, now=now)
            if outcome is not None:
                new_statuses += 1
                if outcome == "orphan":
                    orphans.append(status.wamid)
                elif status.status == "failed":
                    failed.append((status.wamid, status.recipient_id))
        for record in events:
            statements.execute(
                _INSERT_EVENT,
                {
                    "body_id": body_id,
                    "kind": record.kind,
                    "provider": record.provider,
                    "phone_number_id": record.phone_number_id,
                    "detail": _dumps(record.detail),
                    "received_at": now,
                },
            )
        return AcceptCounts(
            body_id, new, duplicates, ignored, new_statuses, tuple(orphans), tuple(failed)
        )

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
                AlchemyStatements(connection, self._insert_new),
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
        statements: Statements,
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
        return statements.insert_id(
            webhook_bodies,
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

    def body(self, body_id: int) -> bytes:
        with self._read() as connection:
            value = connection.execute(
                select(webhook_bodies.c.body).where(webhook_bodies.c.id == body_id)
            ).scalar_one()
        return bytes(value)

    # ---- statuses -------------------------------------------------------------------------

    def _record_status(
        self, statements: Statements, status: StatusRecord, *, body_id: int | None, now: float
    ) -> str | None:
        """'matched', 'orphan', or None for a status already stored."""
        current = statements.first(_OUTBOUND_BY_WAMID, {"wamid": status.wamid})
        if current is None and status.provider == "serpro" and (status.request_id or status.wamid):
            current = statements.first(
                _OUTBOUND_BY_REQUEST_ID,
                {
                    "provider": "serpro",
                    "request_id": status.request_id or None,
                    "status_id": status.wamid or None,
                },
            )
        values: dict[str, Any] = {
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
        if not statements.insert_new(message_statuses, values):
            return None
        if current is None:
            return "orphan"
        outbound_id, current_status, current_wamid, current_request_id = current
        changes: dict[str, Any] = {}
        if current_wamid is None and status.wamid != current_request_id:
            changes["wamid"] = status.wamid
        if _STATUS_RANK.get(status.status, 0) >= _STATUS_RANK.get(current_status or "", 0):
            changes["status"] = status.status
        if changes:
            statements.execute(_UPDATE_OUTBOUND, {"outbound_id": outbound_id, **changes})
        return "matched"

    def record_status(self, status: StatusRecord, *, now: float | None = None) -> str | None:
        """Store one status outside a webhook (e.g. the sandbox's `sandbox` status)."""
        with self._write() as connection:
            return self._record_status(
                AlchemyStatements(connection, self._insert_new),
                status,
                body_id=None,
                now=time.time() if now is None else now,
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
        lease expired, no earlier message of its contact waits, and no other message of its
        contact is in flight: that is what keeps one contact's messages in order, one at a
        time, while other contacts proceed in parallel.
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
            for _ in range(3):
                for query in queries:
                    row = connection.execute(query, {"now": now}).mappings().first()
                    if row is not None:
                        break
                if row is None or self.dialect != "postgresql":
                    break
                if _contact_still_free(connection, row):
                    break
                row = None  # another worker claimed a message of this contact meanwhile
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
            body=bytes(row["webhook_body"]) if row["webhook_body"] is not None else None,
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

    def renew_leases(self, jobs: Sequence[Job], lease_seconds: float) -> int:
        """Extend the leases of `jobs` (this process's jobs in flight) in one statement; how
        many were still ours. Each owner holds one job at a time, so matching ids and owners
        as two sets renews exactly the pairs given."""
        if not jobs:
            return 0
        m = inbound_messages
        with self._write() as connection:
            result = connection.execute(
                update(m)
                .where(
                    m.c.id.in_([job.id for job in jobs]),
                    m.c.lease_owner.in_([job.owner for job in jobs]),
                    m.c.state == "processing",
                )
                .values(lease_expires_at=time.time() + lease_seconds)
            )
            return int(result.rowcount)

    def release(self, job: Job) -> bool:
        """Give the job back to the queue at once, as if never claimed this time (a graceful
        stop that could not wait for it); False when it is no longer ours."""
        with self._write() as connection:
            result = connection.execute(
                update(inbound_messages)
                .where(self._fenced(job))
                .values(
                    state="received",
                    available_at=time.time(),
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=inbound_messages.c.attempts - 1,
                )
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

    def outbound_not_sent(self, outbound_ids: Sequence[int], error: str) -> None:
        """Recorded messages that will never be sent (one before them was refused): failed,
        not tried, so no page shows them as still being sent."""
        if not outbound_ids:
            return
        with self._write() as connection:
            connection.execute(
                update(outbound_messages)
                .where(outbound_messages.c.id.in_(list(outbound_ids)))
                .values(state="failed", error=error)
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

    # ---- provider tokens ------------------------------------------------------------------

    def provider_token(self, key: str) -> tuple[str, float | None] | None:
        """A provider's shared access token and when to renew it (SERPRO's OAuth)."""
        with self._read() as connection:
            row = connection.execute(
                select(provider_tokens.c.token, provider_tokens.c.expires_at).where(
                    provider_tokens.c.provider == key
                )
            ).first()
        return None if row is None else (str(row.token), row.expires_at)

    def save_provider_token(self, key: str, token: str, expires_at: float | None) -> None:
        values = {"token": token, "expires_at": expires_at, "updated_at": time.time()}
        statement = (
            self._insert(provider_tokens)
            .values(provider=key, **values)
            .on_conflict_do_update(index_elements=[provider_tokens.c.provider], set_=values)
        )
        with self._write() as connection:
            connection.execute(statement)

    # ---- pacing (pipeline/pacing.py) -----------------------------------------------------

    def take_send_tokens(
        self, key: str, wanted: int, *, rate: float, burst: float
    ) -> buckets.Grant:
        with self._write() as connection:
            return buckets.take(connection, key, wanted, rate=rate, burst=burst)

    def pause_sends(self, key: str, seconds: float, *, rate: float, burst: float) -> None:
        with self._write() as connection:
            buckets.pause(connection, key, seconds, rate=rate, burst=burst)

    def send_buckets(self, *, rate: float, burst: float) -> list[buckets.BucketState]:
        with self._read() as connection:
            return buckets.states(connection, rate=rate, burst=burst)

    def status_report(self, *, rate: float, burst: float) -> report.StatusReport:
        """The queue, the work in flight and the send rate (`whatsapp-gateway status`)."""
        with self._read() as connection:
            return report.gather(connection, time.time(), rate=rate, burst=burst)

    # ---- waking other processes (PostgreSQL) ----------------------------------------------

    def announce_work(self) -> None:
        """Tell listening worker processes that new work was stored (PostgreSQL; elsewhere
        nothing: SQLite's processes share one machine and poll)."""
        if self.dialect == "postgresql":
            with self._write() as connection:
                listen.notify(connection)

    def job_listener(
        self, on_work: Callable[[], None], *, interval: float = 0.01
    ) -> listen.Listener | None:
        """A thread calling `on_work` when another process stores work: PostgreSQL's
        notifications, or SQLite's commit counter read every `interval` seconds (not for an
        in-memory database, which no other process sees)."""
        if self.dialect == "postgresql":
            return listen.JobListener(self.engine, on_work)
        if self._lock_reads:  # in-memory SQLite: one process, woken directly
            return None
        return listen.ChangeWatcher(self.engine, on_work, interval)

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

    # ---- proactive sends (no inbound message: reminders, external events) -----------------

    def latest_contact(self, contact_ids: Sequence[str]) -> dict[str, Any] | None:
        """provider, phone_number_id, contact_key, contact_id of the latest inbound message
        from any of `contact_ids` (a wa_id or a business-scoped user id), or None."""
        m = inbound_messages
        with self._read() as connection:
            row = (
                connection.execute(
                    select(m.c.provider, m.c.phone_number_id, m.c.contact_key, m.c.contact_id)
                    .where(m.c.contact_id.in_(list(contact_ids)))
                    .order_by(m.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def replies_in_flight(self, contact_key: str) -> bool:
        """Whether a message of this contact has its bot answer and is still having its
        replies sent (now, or at a retry): a proactive message waits for them, so it does not
        come between them."""
        m = inbound_messages
        with self._read() as connection:
            row = connection.execute(
                select(m.c.id)
                .where(
                    m.c.contact_key == contact_key,
                    m.c.state.in_(("processing", "received")),
                    m.c.responses.is_not(None),
                )
                .limit(1)
            ).first()
        return row is not None

    def record_proactive(
        self,
        *,
        provider: str,
        phone_number_id: str | None,
        contact_key: str | None,
        contact_id: str | None,
        bodies: Sequence[Mapping[str, Any]],
        payload_refs: Mapping[str, str],
    ) -> list[int]:
        """Record messages sent on the bot's own initiative (`pending`), before any send."""
        now = time.time()
        ids: list[int] = []
        with self._write() as connection:
            for ref, payload in payload_refs.items():
                self._insert_new(
                    connection,
                    payload_refs_table,
                    {"ref": ref, "payload": payload, "created_at": now},
                )
            for seq, body in enumerate(bodies):
                inserted = connection.execute(
                    outbound_messages.insert().values(
                        inbound_id=None,
                        seq=seq,
                        provider=provider,
                        phone_number_id=phone_number_id,
                        contact_key=contact_key,
                        contact_id=contact_id,
                        request_body=_dumps(body),
                        state="pending",
                        attempts=0,
                        created_at=now,
                    )
                )
                primary_key = inserted.inserted_primary_key
                assert primary_key is not None
                ids.append(int(primary_key[0]))
        return ids

    def proactive_accepted(
        self, outbound_id: int, *, wamid: str | None, request_id: str | None, status: str | None
    ) -> None:
        with self._write() as connection:
            connection.execute(_accepted(outbound_id, wamid, request_id, status, time.time()))

    def recent_contacts(self, limit: int = 50, *, window: int = 5000) -> list[dict[str, Any]]:
        """Contacts by their latest inbound message, newest first (the operator views).

        Only the latest `window` messages are looked at, so a page that polls this costs the
        same on a store of millions; `messages` counts the contact's messages among them.
        """
        m = inbound_messages
        recent = select(m.c.id, m.c.contact_key).order_by(m.c.id.desc()).limit(window).subquery()
        latest = (
            select(
                recent.c.contact_key,
                func.max(recent.c.id).label("last_id"),
                func.count().label("messages"),
            )
            .group_by(recent.c.contact_key)
            .order_by(func.max(recent.c.id).desc())
            .limit(limit)
            .subquery()
        )
        query = (
            select(
                m.c.contact_key,
                m.c.contact_id,
                m.c.provider,
                m.c.phone_number_id,
                m.c.wamid,
                m.c.body_id,
                m.c.text,
                m.c.state,
                m.c.received_at,
                latest.c.messages,
            )
            .join(latest, m.c.id == latest.c.last_id)
            .order_by(m.c.id.desc())
        )
        with self._read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def statuses_of(self, wamids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Every status stored for each of `wamids`, oldest first."""
        found: dict[str, list[dict[str, Any]]] = {wamid: [] for wamid in wamids}
        if not found:
            return found
        s = message_statuses
        query = (
            select(s.c.wamid, s.c.status, s.c.timestamp, s.c.errors, s.c.received_at)
            .where(s.c.wamid.in_(list(found)))
            .order_by(s.c.id)
        )
        with self._read() as connection:
            for row in connection.execute(query).mappings():
                item = dict(row)
                item["errors"] = json.loads(item["errors"]) if item["errors"] else []
                found[row["wamid"]].append(item)
        return found


def _started(table: Any) -> Any:
    """A message some worker began: tried before, or its backend answer is kept."""
    return or_(table.c.attempts > 0, table.c.responses.isnot(None))


def _written(table: Any) -> Any:
    """When the contact wrote the message: WhatsApp's timestamp, else when it arrived."""
    return func.coalesce(table.c.timestamp, table.c.received_at)


def _goes_before(other: Any, started: Any, written: Any, message_id: Any) -> Any:
    """Whether the waiting message `other` of the same contact goes before the message whose
    `started`, `written` and `id` are given (columns or values).

    A message already begun finishes before any other starts (its replies may be half sent),
    begun ones by arrival; the others go in the order the contact wrote them (WhatsApp's
    timestamp, equal ones by arrival), so two messages whose webhooks came out of order are
    still answered in order when both are waiting. This is a total order: the first message
    of a contact is never held back by another.
    """
    other_started = _started(other)
    other_written = _written(other)
    return or_(
        and_(other_started, or_(~started, other.c.id < message_id)),
        and_(
            ~other_started,
            ~started,
            or_(
                other_written < written,
                and_(other_written == written, other.c.id < message_id),
            ),
        ),
    )


_BODY_WITH_CLAIM = 64 * 1024


def _claim_queries(*, for_update: bool) -> tuple[Any, ...]:
    """The queries `Store.claim` tries in turn, built once (`:now` bound at each call).

    Each walks an index in id order and stops at its first hit: leases that expired (rare),
    then messages that wait and are due, whose contact has no message that goes before them
    waiting (`_goes_before`) and no message in flight. "In flight" counts later messages too:
    on PostgreSQL a message may commit after a later one of its contact (ids are drawn before
    commit), and the later one may already be in flight when the earlier one appears.
    """
    m = inbound_messages
    other = inbound_messages.alias("other")
    same_contact = and_(other.c.contact_key == m.c.contact_key, other.c.id != m.c.id)
    in_flight_elsewhere = select(other.c.id).where(same_contact, other.c.state == "processing")
    waiting_before = select(other.c.id).where(
        same_contact,
        other.c.state == "received",
        _goes_before(other, _started(m), _written(m), m.c.id),
    )
    now = bindparam("now", type_=Float)
    queries = []
    for condition in (
        and_(m.c.state == "processing", m.c.lease_expires_at < now, ~in_flight_elsewhere.exists()),
        and_(
            m.c.state == "received",
            m.c.available_at <= now,
            ~waiting_before.exists(),
            ~in_flight_elsewhere.exists(),
        ),
    ):
        # A small body comes with the claim: a read transaction less per job. A large one
        # (many messages in one body) is read once by the worker, which keeps a few parsed.
        small_body = case(
            (webhook_bodies.c.body_length <= _BODY_WITH_CLAIM, webhook_bodies.c.body),
            else_=null(),
        )
        query = (
            select(m, small_body.label("webhook_body"))
            .join_from(m, webhook_bodies, webhook_bodies.c.id == m.c.body_id)
            .where(condition)
            .order_by(m.c.id)
            .limit(1)
        )
        if for_update:  # PostgreSQL: rows another transaction is claiming are skipped
            query = query.with_for_update(skip_locked=True, of=m)
        queries.append(query)
    return tuple(queries)


# The first key of PostgreSQL's two-key advisory locks that serialise claims per contact.
_CONTACT_LOCK_SPACE = 0x57A9


def _contact_still_free(connection: Connection, row: RowMapping) -> bool:
    """PostgreSQL: whether `row` may still be claimed, checked under a per-contact lock.

    The claim query's snapshot cannot see a claim of the same contact that another worker is
    committing at that moment (only the row itself is locked, not its siblings). Holding a
    lock on the contact until this transaction ends, then looking again with a fresh snapshot,
    makes two claims of one contact take turns: the second sees the first's message in flight.
    """
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:space, hashtext(:contact))"),
        {"space": _CONTACT_LOCK_SPACE, "contact": row["contact_key"]},
    )
    other = inbound_messages
    blocking = other.c.state == "processing"
    if row["state"] == "received":
        started = true() if row["attempts"] > 0 or row["responses"] is not None else false()
        written = row["timestamp"] if row["timestamp"] is not None else row["received_at"]
        blocking = or_(
            blocking,
            and_(
                other.c.state == "received",
                _goes_before(other, started, literal(float(written)), literal(row["id"])),
            ),
        )
    blocker = connection.execute(
        select(other.c.id)
        .where(other.c.contact_key == row["contact_key"], other.c.id != row["id"], blocking)
        .limit(1)
    ).first()
    return blocker is None


def _accepted(
    outbound_id: int, wamid: str | None, request_id: str | None, status: str | None, now: float
) -> Any:
    """The statement that marks a sent message accepted with the provider's ids: a reply's
    and a proactive message's alike."""
    return (
        update(outbound_messages)
        .where(outbound_messages.c.id == outbound_id)
        .values(
            state="accepted",
            wamid=wamid,
            request_id=request_id,
            status=status,
            attempts=outbound_messages.c.attempts + 1,
            accepted_at=now,
            error=None,
        )
    )


def _inbound_item(row: RowMapping) -> dict[str, Any]:
    return {
        "direction": "in",
        "id": row["id"],
        "at": row["received_at"],
        "provider": row["provider"],
        "wamid": row["wamid"],
        "body_id": row["body_id"],
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
