"""The worker process `serve` starts beside its web server, and keeps running.

Why a process and not threads in the web process: worker threads share the web process's
GIL, so while they call the bot and send, every webhook waits for the interpreter; measured
with the server on one core, acks then took 150-600 ms at the 99th percentile instead of
tens (docs/performance.md). A separate process, started with a lower CPU priority (nice 10),
leaves the webhook the core whenever it needs it and works jobs with the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

NICENESS = 10  # default: the webhook first, the worker gets the CPU the web process leaves
_COMMAND = "from whatsapp_api_integration.cli import main; raise SystemExit(main(['worker']))"


class WorkerProcess:
    """`whatsapp-gateway worker` as a child process, restarted if it dies unasked."""

    def __init__(self, restart_delay: float = 1.0, niceness: int = NICENESS) -> None:
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

        def lower_priority() -> None:
            os.nice(niceness)

        self._process = subprocess.Popen(
            [sys.executable, "-c", _COMMAND],
            preexec_fn=lower_priority if niceness and hasattr(os, "nice") else None,
        )
        log.info("worker process %d started (nice %d)", self._process.pid, niceness)

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
