"""Tell worker processes at once that another process stored new work.

Worker threads that find nothing to do look again every `poll_interval_seconds`; within one
process the webhook wakes them directly. Across processes:
- PostgreSQL: the web process sends a `NOTIFY` after storing new messages and each worker
  process `LISTEN`s on one connection of its own (`JobListener`);
- SQLite: every process is on one machine, and `PRAGMA data_version` changes when another
  connection commits; one thread per worker process reads it every few milliseconds
  (`ChangeWatcher`, microseconds each), so the separate worker process `serve` starts sees a
  new message within milliseconds instead of up to a poll interval later.
Polling stays as the safety net: a lost notification (the listening connection dropped, a
driver that cannot wait with a timeout) only costs that interval.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

CHANNEL = "whatsapp_gateway_jobs"


def notify(connection: Connection) -> None:
    """Queue a notification, delivered to listeners when this transaction commits."""
    connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listener:
    """A thread that calls `on_work()` when another process stored work, told by `_watch`
    (one subclass per database); should `_watch` fail, it starts again 5 s later."""

    thread_name = "whatsapp-job-listener"
    doing = "listening for new jobs"

    def __init__(self, engine: Engine, on_work: Callable[[], None], period: float) -> None:
        self.engine = engine
        self.on_work = on_work
        self.period = period  # how often `_watch` looks (and checks whether to stop)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.period + 2.0)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except Exception as error:  # the database went away or is locked: poll meanwhile
                logger.warning("%s failed (%s); polling meanwhile", self.doing, error)
                self._stop.wait(5.0)

    def _watch(self) -> None:
        raise NotImplementedError


class JobListener(Listener):
    """PostgreSQL: `LISTEN` on a connection of its own; each notification calls `on_work()`."""

    def __init__(self, engine: Engine, on_work: Callable[[], None], wait: float = 1.0) -> None:
        super().__init__(engine, on_work, wait)
        self.listening = threading.Event()  # set while LISTEN is in place

    def _watch(self) -> None:
        pooled = self.engine.raw_connection()
        try:
            driver: Any = getattr(pooled, "dbapi_connection", None) or pooled.connection
            driver.autocommit = True
            cursor = driver.cursor()
            cursor.execute(f"LISTEN {CHANNEL}")
            cursor.close()
            wait = _waiter(driver)
            if wait is None:
                logger.info("this PostgreSQL driver cannot wait for notifications: polling only")
                self._stop.wait()
                return
            self.listening.set()
            while not self._stop.is_set():
                if wait(self.period):
                    self.on_work()
        finally:
            self.listening.clear()
            pooled.invalidate()  # LISTEN state must not go back to the pool


def _waiter(driver: Any) -> Callable[[float], bool] | None:
    """A function that waits up to N seconds for notifications and says whether any came,
    for psycopg 3 (3.2 or later) or psycopg2."""
    if hasattr(driver, "notifies") and callable(driver.notifies):  # psycopg 3
        import inspect

        if "timeout" not in inspect.signature(driver.notifies).parameters:
            return None

        def wait_psycopg(seconds: float) -> bool:
            return bool(list(driver.notifies(timeout=seconds, stop_after=1)))

        return wait_psycopg
    if hasattr(driver, "poll"):  # psycopg2

        def wait_psycopg2(seconds: float) -> bool:
            if select.select([driver], [], [], seconds) == ([], [], []):
                return False
            driver.poll()
            came = bool(driver.notifies)
            driver.notifies.clear()
            return came

        return wait_psycopg2
    return None


class ChangeWatcher(Listener):
    """SQLite: a thread that calls `on_work()` when another connection committed.

    Its own commits are "another connection" too, so a busy worker process is told of its
    own writes as well; that only wakes an idle thread (if any) to look for work.
    """

    thread_name = "whatsapp-job-watcher"
    doing = "watching for new jobs"

    def _watch(self) -> None:
        pooled = self.engine.raw_connection()
        try:
            cursor = pooled.cursor()
            seen = None
            while not self._stop.wait(self.period):
                version = cursor.execute("PRAGMA data_version").fetchone()
                if seen is not None and version != seen:
                    self.on_work()
                seen = version
        finally:
            pooled.invalidate()  # a connection held for the process's life: not the pool's
