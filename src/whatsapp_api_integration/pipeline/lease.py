"""Leases of the jobs a process has in hand: renewed while the process lives, given back on a
stop that cannot wait.

A claimed job carries a lease (`JOB_LEASE_SECONDS`); when it expires, another worker takes the
job back, on the assumption that its worker died. So a live worker must never let it expire,
however long the bot thinks or the pacing makes a send wait: one thread per process renews the
leases of all the process's jobs in flight, every third of the lease, in one statement. A job
is taken back only when its process stopped renewing: it died, froze, or lost the database for
longer than two renewals.

On a graceful stop, the jobs still running when the grace period ends are released (back to
the queue at once, the attempt not counted) so another worker takes them immediately instead
of after their lease; the process then exits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from whatsapp_api_integration.store import Job, Store

logger = logging.getLogger("whatsapp_api_integration.pipeline")


class LeaseKeeper:
    def __init__(self, store: Store, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self._held: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def holding(self, job: Job) -> Iterator[None]:
        """Keep `job`'s lease alive while the block runs."""
        self._ensure_running()
        with self._lock:
            self._held[job.id] = job
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(job.id, None)

    def held(self) -> list[Job]:
        with self._lock:
            return list(self._held.values())

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="whatsapp-lease-keeper", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew()

    def renew(self) -> int:
        """Renew every held lease now; how many were still ours."""
        jobs = self.held()
        if not jobs:
            return 0
        try:
            renewed = self.store.renew_leases(jobs, self.lease_seconds)
        except Exception as error:  # the database is away: try again at the next beat
            logger.warning("renewing %d job lease(s) failed: %s", len(jobs), error)
            return 0
        # A job that finished between `held()` and the update is not renewed, and rightly so:
        # only a job still in hand and not renewed was taken from us.
        still_held = {job.id for job in self.held()}
        lost = sum(job.id in still_held for job in jobs) - renewed
        if lost > 0:
            logger.warning(
                "%d of %d job lease(s) were no longer ours (taken back after expiring?)",
                lost,
                len(jobs),
            )
        return renewed

    def release_all(self) -> int:
        """Give every job still held back to the queue (a stop that cannot wait for them);
        how many were released."""
        released = 0
        for job in self.held():
            try:
                if self.store.release(job):
                    released += 1
                    logger.warning(
                        "job %s (wamid %s) released unfinished: another worker takes it now",
                        job.id,
                        job.wamid,
                    )
            except Exception as error:
                logger.warning(
                    "job %s could not be released (%s): it is taken back when its lease expires",
                    job.id,
                    error,
                )
        return released

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(5.0)
        self._thread = None
