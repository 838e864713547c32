"""The worker process `serve` starts beside its web server, and keeps running.

Why a process and not threads in the web process: worker threads share the web process's
GIL, so while they call the bot and send, every webhook waits for the interpreter; measured
with the server on one core, acks then took 150-600 ms at the 99th percentile instead of
tens (docs/performance.md). A separate process, started with a lower CPU priority (nice 10),
leaves the webhook the core whenever it needs it and works jobs with the rest. `idle` (Linux's
SCHED_IDLE) goes further: the worker runs only when the web process has nothing to do, which
on one core took the ack throughput from ~1,000 to ~1,350 a second with the worker running,
but stops replies altogether while webhooks keep that core busy.

The child runs in its own session, so a signal sent to the server's process group (Ctrl-C in
a terminal, `kill -TERM -<pgid>`) does not reach it as well as the one `stop` sends: a worker
takes a second SIGTERM as "release the jobs in hand at once", and would drop the job it was
finishing. On Linux it is also told to stop (SIGTERM) if the server dies without stopping it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

NICENESS = 10  # default: the webhook first, the worker gets the CPU the web process leaves
IDLE = "idle"  # SCHED_IDLE: the worker gets only CPU nobody else wants
_COMMAND = "from whatsapp_api_integration.cli import main; raise SystemExit(main(['worker']))"


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_when_parent_dies() -> None:
    """Linux: SIGTERM this (child) process when its parent dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        pass


class WorkerProcess:
    """`whatsapp-gateway worker` as a child process, restarted if it dies unasked."""

    def __init__(self, restart_delay: float = 1.0, niceness: int | str = NICENESS) -> None:
        self.restart_delay = restart_delay
        self.niceness = niceness
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="worker-watcher", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        niceness = self.niceness

        def prepare_child() -> None:
            if niceness == IDLE:
                if hasattr(os, "SCHED_IDLE"):
                    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            elif isinstance(niceness, int) and niceness and hasattr(os, "nice"):
                os.nice(niceness)
            _stop_when_parent_dies()

        self._process = subprocess.Popen(
            [sys.executable, "-c", _COMMAND],
            preexec_fn=prepare_child,
            start_new_session=True,
        )
        log.info("worker process %d started (nice %s)", self._process.pid, niceness)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is not None and process.poll() is not None:
                if self._stopping.is_set():
                    return
                log.error(
                    "worker process %d exited with %s; starting another in %.0fs",
                    process.pid,
                    process.returncode,
                    self.restart_delay,
                )
                if self._stopping.wait(self.restart_delay):
                    return
                self._spawn()
            self._stopping.wait(0.5)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: the worker finishes the jobs in hand; SIGKILL after `timeout`."""
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker process %d still running after %.0fs; killed", process.pid, timeout)
            process.kill()
            process.wait(5)
