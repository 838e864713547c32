"""Engines for the store: SQLite tuned for many threads, PostgreSQL as it is; migrations.

SQLite allows one writer at a time. Rather than let threads collide and sleep in SQLite's busy
handler, every write transaction of a process takes one lock per database file, and begins with
`BEGIN IMMEDIATE`, so a transaction that will write holds the write lock from its first read
(two processes on one file serialise there; `busy_timeout` makes the other wait, not fail).
Reads begin deferred and run beside writers (WAL).

Durability is chosen per write transaction (STORE_FLUSH). A `durable` one is flushed to disk
before its commit returns: SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit` on.
Any other skips the flush: SQLite `synchronous=NORMAL` in WAL mode, PostgreSQL
`SET LOCAL synchronous_commit TO OFF`. Such a commit survives a crash of our process (the
data is in the OS's hands, or PostgreSQL's) and becomes durable with the next flush; only a
power cut or an OS crash (for PostgreSQL: a crash of its server) can undo it.

- `webhooks` (default): stored webhook bodies are flushed before the 200, so an ack is never
  undone; the workers' state changes are not, and after a power cut the last jobs are done
  again (a reply may go twice), none is lost.
- `all`: every commit is flushed (a power cut undoes nothing; the workers pay a flush per
  state change, 2.5-15 ms on a busy virtual disk: a few hundred messages a second at most).
- `none`: nothing is flushed; a power cut may undo the last acks too (WhatsApp then does not
  redeliver those messages). For disks whose flush is too slow for the load.
See docs/performance.md for the measured cost of each.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool, StaticPool

MIGRATIONS = Path(__file__).with_name("migrations")
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
# Any constant: the key of PostgreSQL's advisory lock that lets one process migrate at a time.
_MIGRATION_LOCK_KEY = 0x57A9_0001
_BEGIN_OPTION = "whatsapp_sqlite_begin"
_DURABLE_OPTION = "whatsapp_durable"
# Where a pooled SQLite connection remembers its PRAGMA synchronous (store/direct.py too).
SYNCHRONOUS_INFO_KEY = "synchronous"

# What serialises one process's writers: a threading.Lock, or an RLock for in-memory SQLite.
Lock = contextlib.AbstractContextManager[Any]
_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _sqlalchemy_2() -> bool:
    return int(sqlalchemy.__version__.split(".")[0]) >= 2


def pool_size_for(http_threads: int, worker_threads: int) -> int:
    """Connections one process needs: each HTTP thread and each worker thread holds at most
    one, for one short transaction; plus the lease keeper and (PostgreSQL) the job listener.
    (The group commit keeps one connection checked out for itself, store/direct.py; the HTTP
    thread committing a batch holds no other, so the HTTP threads still need one each.)"""
    return max(0, http_threads) + max(0, worker_threads) + 2


def create_store_engine(
    url: str, *, pool_size: int | None = None
) -> tuple[Engine, Lock | None, bool]:
    """An engine for `url`, the process-wide write lock it needs (SQLite) and whether reads
    must take that lock too (an in-memory SQLite shares one connection).

    `pool_size`: connections kept open to PostgreSQL (see `pool_size_for`); at most 2 more are
    opened in a rush. SQLite's connections cost nothing, so there it only sets the pool's base."""
    parsed = make_url(url)
    dialect = parsed.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise ValueError(
            f"DATABASE_URL: unsupported database {dialect!r}; use sqlite:/// or postgresql://"
        )
    # Worker threads and web threads each hold a connection for one short transaction.
    kwargs: dict[str, Any] = {"pool_pre_ping": dialect != "sqlite"}
    pool = {"pool_size": 10, "max_overflow": 40}
    if pool_size is not None and dialect != "sqlite":
        pool = {"pool_size": max(1, pool_size), "max_overflow": 2}
    elif pool_size is not None:
        pool = {"pool_size": max(1, pool_size), "max_overflow": 40}
    if not _sqlalchemy_2():
        kwargs["future"] = True
    if dialect == "postgresql" and parsed.drivername == "postgresql" and _sqlalchemy_2():
        # psycopg 3 is what the [postgres] extra installs; SQLAlchemy's default is psycopg2
        # (and SQLAlchemy 1.4 knows only psycopg2: there, install it).
        url = str(parsed.set(drivername="postgresql+psycopg"))
    if dialect != "sqlite":
        return sqlalchemy.create_engine(url, **kwargs, **pool), None, False

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(parsed.query)
    kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    else:  # SQLAlchemy 1.4 would open a new connection per transaction (NullPool)
        kwargs.update(poolclass=QueuePool, **pool)
    engine = sqlalchemy.create_engine(url, **kwargs)
    _tune_sqlite(engine, wal=not in_memory)
    key = ":memory:" if in_memory else str(Path(database).resolve())
    if in_memory:
        return engine, threading.RLock(), True
    with _file_locks_guard:
        lock = _file_locks.setdefault(key, threading.Lock())
    return engine, lock, False


def _tune_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) emit BEGIN itself, with the mode we want.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        synchronous = "FULL" if options.get(_DURABLE_OPTION, True) else "NORMAL"
        info = connection.connection.info
        if info.get(SYNCHRONOUS_INFO_KEY) != synchronous:  # a PRAGMA only when it changes
            connection.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
            info[SYNCHRONOUS_INFO_KEY] = synchronous
        connection.exec_driver_sql(f"BEGIN {options.get(_BEGIN_OPTION, 'IMMEDIATE')}")


@contextlib.contextmanager
def write_transaction(
    engine: Engine, lock: Lock | None, *, durable: bool = True
) -> Iterator[Connection]:
    """A write transaction, flushed to disk at commit when `durable` (see the module doc)."""
    with lock if lock is not None else contextlib.nullcontext(), engine.connect() as connection:
        if not durable:
            connection = connection.execution_options(**{_DURABLE_OPTION: False})
        with connection.begin():
            if not durable and connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield connection


@contextlib.contextmanager
def read_transaction(engine: Engine, lock: Lock | None, lock_reads: bool) -> Iterator[Connection]:
    guard = lock if (lock is not None and lock_reads) else None
    with guard if guard is not None else contextlib.nullcontext(), engine.connect() as connection:
        connection = connection.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        with connection.begin():
            yield connection


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, lock: Lock | None) -> None:
    """`alembic upgrade head`, one process at a time, in one transaction."""
    with write_transaction(engine, lock) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        command.upgrade(alembic_config(connection), "head")


def migration_state(connection: Connection) -> tuple[bool, str]:
    """(current, description): whether the database is at the migrations' head."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return True, f"migrations at {', '.join(sorted(heads))}"
    found = ", ".join(sorted(current)) or "none"
    return False, f"migrations not current: database at {found}, code at {', '.join(sorted(heads))}"
