"""A process that only works jobs: `whatsapp-gateway worker` and Django's
`manage.py whatsapp_worker` share its sizing and its way of stopping.

- At least one worker thread, and a database pool for those threads alone (no HTTP thread
  holds a connection here), plus the lease keeper and the job listener (`pool_size_for`).
- SIGTERM or SIGINT asks for a graceful stop: the caller stops claiming, lets the jobs in
  hand finish for up to SHUTDOWN_GRACE_SECONDS, and releases those still running. A second
  signal gives every job in hand back to the queue at once and exits with status 1.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import Gateway
    from whatsapp_api_integration.settings import Settings

logger = logging.getLogger("whatsapp_api_integration.pipeline")


def worker_process_settings(settings: Settings, threads: int | None = None) -> Settings:
    """`settings` for a worker process of `threads` threads (default WORKERS, at least 1),
    its pool sized for them unless DATABASE_POOL_SIZE says otherwise."""
    from whatsapp_api_integration.store.engine import pool_size_for

    threads = max(1, settings.workers if threads is None else threads)
    pool_size = settings.database_pool_size or pool_size_for(0, threads)
    return dataclasses.replace(settings, workers=threads, database_pool_size=pool_size)


def stop_on_signals(gateway: Gateway) -> threading.Event:
    """Install SIGTERM and SIGINT handlers (main thread only); the event is set by the first
    signal. A second one releases the jobs in hand (`Gateway.abandon`) and exits with 1."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if not stop.is_set():
            stop.set()
            return
        # A second signal (Ctrl-C twice): do not wait for the jobs in hand.
        released = gateway.abandon()
        logger.warning("worker: stopping now; %d job(s) given back to the queue", released)
        raise SystemExit(1)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
