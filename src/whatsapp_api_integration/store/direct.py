"""The statements a stored webhook needs, run two ways: on a SQLAlchemy connection, or on the
group commit's own DBAPI connection (`DirectConnection`).

Storing a webhook body is the gateway's hot path: a few INSERTs per body, one transaction per
batch of bodies (`Store.accept`). Through SQLAlchemy each transaction pays a pool checkout
(and on PostgreSQL a ping), the `begin` event, and at checkin a reset rollback; each statement
pays the compiled-cache lookup, parameter processing and result wrapping. Together that was
most of the CPU of an acknowledgement. The group commit runs one batch at a time, so it keeps
one connection of its own and sends the driver the SQL SQLAlchemy compiled for it, once per
statement. What the driver raises is wrapped as SQLAlchemy would (`sqlalchemy.exc`), so the
callers' handling (503 for an unreachable store) is unchanged.

Both kinds of `Statements` take SQLAlchemy statement objects built once (module constants):
the direct one compiles each the first time it is used. Values are passed by name, and only
by name: a statement whose compiled form binds a value it was not given is refused.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from whatsapp_api_integration.store.engine import SYNCHRONOUS_INFO_KEY, Lock

_COMMIT = "COMMIT"
# A PostgreSQL connection unused this long is handed back to the pool and a pinged one taken
# (the pool pings at checkout): the server may have closed it meanwhile. Under load the group
# commit keeps its connection busy and never pays for that.
IDLE_RECHECK_SECONDS = 1.0


class Statements(Protocol):
    """What `Store._accept_one` and its helpers run their SQL through."""

    def insert_id(self, table: Any, values: Mapping[str, Any]) -> int:
        """INSERT one row; its primary key."""

    def insert_new(self, table: Any, values: Mapping[str, Any]) -> bool:
        """INSERT unless a unique constraint forbids it; whether the row was written."""

    def first(self, statement: Any, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of a SELECT, or None."""

    def execute(self, statement: Any, params: Mapping[str, Any]) -> None: ...


class AlchemyStatements:
    """`Statements` on a SQLAlchemy connection (the store's other write transactions)."""

    def __init__(self, connection: Connection, insert_new: Any) -> None:
        self.connection = connection
        self._insert_new = insert_new  # Store._insert_new

    def insert_id(self, table: Any, values: Mapping[str, Any]) -> int:
        result = self.connection.execute(table.insert(), dict(values))
        primary_key = result.inserted_primary_key
        assert primary_key is not None
        return int(primary_key[0])

    def insert_new(self, table: Any, values: Mapping[str, Any]) -> bool:
        return bool(self._insert_new(self.connection, table, values))

    def first(self, statement: Any, params: Mapping[str, Any]) -> Sequence[Any] | None:
        row = self.connection.execute(statement, dict(params)).first()
        return None if row is None else tuple(row)

    def execute(self, statement: Any, params: Mapping[str, Any]) -> None:
        self.connection.execute(statement, dict(params))


class _Compiled:
    """SQL compiled for the driver, by statement and by the names of the values given."""

    def __init__(self, engine: Engine) -> None:
        self.postgresql = engine.dialect.name == "postgresql"
        # SQLite's driver takes `:name` as well as `?`: values stay a mapping on both.
        self.dialect = engine.dialect if self.postgresql else sqlite.dialect(paramstyle="named")
        self._sql: dict[tuple[str, int, tuple[str, ...]], tuple[Any, str]] = {}

    def sql(self, kind: str, statement: Any, keys: tuple[str, ...]) -> str:
        key = (kind, id(statement), keys)
        found = self._sql.get(key)
        if found is not None:
            return found[1]
        if kind == "insert_id":
            built = self._insert(statement)
            if self.postgresql:
                built = built.returning(*statement.primary_key.columns)
        elif kind == "insert_new":
            built = self._insert(statement).on_conflict_do_nothing()
            if self.postgresql:
                built = built.returning(*statement.primary_key.columns)
        else:
            built = statement
        compiled = built.compile(dialect=self.dialect, column_keys=list(keys))
        unbound = set(compiled.bind_names.values()) - set(keys)
        if unbound:
            raise ValueError(f"statement needs values it was not given: {sorted(unbound)}")
        # The statement is kept so that its id() stays its own while it is cached.
        self._sql[key] = (statement, str(compiled))
        return self._sql[key][1]

    def _insert(self, table: Any) -> Any:
        return (postgresql if self.postgresql else sqlite).insert(table)


class DirectTransaction:
    """`Statements` on a DBAPI cursor, inside a `DirectConnection.transaction()`."""

    def __init__(self, cursor: Any, compiled: _Compiled, wrap: Any) -> None:
        self.cursor = cursor
        self._compiled = compiled
        self.wrap = wrap  # a driver error -> what SQLAlchemy would have raised

    def _run(self, kind: str, statement: Any, params: Mapping[str, Any]) -> Any:
        sql = self._compiled.sql(kind, statement, tuple(params))
        try:
            self.cursor.execute(sql, params)
        except Exception as error:
            raise self.wrap(sql, error) from error
        return self.cursor

    def insert_id(self, table: Any, values: Mapping[str, Any]) -> int:
        cursor = self._run("insert_id", table, values)
        if self._compiled.postgresql:
            return int(cursor.fetchone()[0])
        return int(cursor.lastrowid)

    def insert_new(self, table: Any, values: Mapping[str, Any]) -> bool:
        cursor = self._run("insert_new", table, values)
        if self._compiled.postgresql:  # psycopg may not count rows skipped ON CONFLICT
            return cursor.fetchone() is not None
        return bool(cursor.rowcount)

    def first(self, statement: Any, params: Mapping[str, Any]) -> Sequence[Any] | None:
        row = self._run("first", statement, params).fetchone()
        return None if row is None else tuple(row)

    def execute(self, statement: Any, params: Mapping[str, Any]) -> None:
        self._run("execute", statement, params)


class DirectConnection:
    """One DBAPI connection kept out of the pool for one caller at a time (the group commit,
    under `Store._accept_leader`).

    `durable`: each commit is flushed to disk before it returns (SQLite `synchronous=FULL`,
    PostgreSQL `synchronous_commit` as configured), as `engine.write_transaction` does.
    """

    def __init__(self, engine: Engine, lock: Lock | None, *, durable: bool) -> None:
        self.engine = engine
        self.lock = lock
        self.durable = durable
        self.postgresql = engine.dialect.name == "postgresql"
        self._compiled = _Compiled(engine)
        self._connection: Any = None  # SQLAlchemy's pool proxy of the DBAPI connection
        self._statements: DirectTransaction | None = None  # on that connection's cursor
        self._used_at = 0.0
        dbapi = engine.dialect.dbapi
        assert dbapi is not None
        self._dbapi_error: type[Exception] = dbapi.Error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DirectTransaction]:
        """A write transaction, committed (and flushed when durable) when the block ends."""
        with self.lock if self.lock is not None else contextlib.nullcontext():
            connection, statements = self._connect()
            try:
                self._begin(statements)
                yield statements
                try:
                    connection.commit()
                except Exception as error:
                    raise statements.wrap(_COMMIT, error) from error
            except BaseException:
                if self._connection is connection:  # (not invalidated by the error)
                    self._rollback(connection)
                raise
            finally:
                self._used_at = time.monotonic()

    @staticmethod
    def lost_before_commit(error: BaseException) -> bool:
        """Whether `error` is the connection found dropped before the COMMIT was sent: then
        nothing was written, and the transaction may run again on a new connection."""
        return (
            isinstance(error, exc.DBAPIError)
            and error.connection_invalidated
            and error.statement != _COMMIT
        )

    def close(self) -> None:
        connection, self._connection, self._statements = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()  # the cursor with it

    def _connect(self) -> tuple[Any, DirectTransaction]:
        if (
            self._connection is not None
            and self.postgresql
            and time.monotonic() - self._used_at > IDLE_RECHECK_SECONDS
        ):
            self.close()
        if self._connection is None or self._statements is None:
            try:
                connection = self.engine.raw_connection()
            except self._dbapi_error as error:  # the pool lets the driver's error through
                raise exc.DBAPIError.instance(
                    None, None, error, self._dbapi_error, dialect=self.engine.dialect
                ) from error
            # One cursor for the connection's life: a cursor per batch cost as much as a row.
            cursor = connection.cursor()
            self._connection = connection
            self._statements = DirectTransaction(
                cursor, self._compiled, self._wrapper(connection, cursor)
            )
        return self._connection, self._statements

    def _begin(self, statements: DirectTransaction) -> None:
        cursor = statements.cursor
        try:
            if self.postgresql:
                # psycopg begins a transaction at the first statement by itself.
                if not self.durable:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
                return
            synchronous = "FULL" if self.durable else "NORMAL"
            info = self._connection.info
            if info.get(SYNCHRONOUS_INFO_KEY) != synchronous:
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                info[SYNCHRONOUS_INFO_KEY] = synchronous
            cursor.execute("BEGIN IMMEDIATE")
        except Exception as error:
            raise statements.wrap("BEGIN", error) from error

    def _rollback(self, connection: Any) -> None:
        try:
            connection.rollback()
        except Exception:  # the connection is unusable: the next transaction takes another
            with contextlib.suppress(Exception):
                connection.invalidate()
            self._connection = self._statements = None

    def _wrapper(self, connection: Any, cursor: Any) -> Any:
        def wrap(sql: str, error: Exception) -> BaseException:
            if not isinstance(error, self._dbapi_error):
                return error
            dialect: Any = self.engine.dialect
            invalidated = bool(dialect.is_disconnect(error, connection.dbapi_connection, cursor))
            if invalidated:
                with contextlib.suppress(Exception):
                    connection.invalidate()
                self._connection = self._statements = None
            # The values are webhook bodies and contacts: kept out of the message (and logs).
            return exc.DBAPIError.instance(
                sql,
                None,
                error,
                self._dbapi_error,
                hide_parameters=True,
                connection_invalidated=invalidated,
                dialect=self.engine.dialect,
            )

        return wrap
