"""`serve`'s worker process: started at a lower CPU priority, restarted when it dies, stopped
with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whatsapp_api_integration.cli.worker_process import NICENESS, WorkerProcess


@pytest.fixture
def sandbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("WPP_", "SERPRO_", "RASA_")) or name in ("ANSWER_BACKEND", "WORKERS"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env or variables.env here
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
    monkeypatch.setenv("WORKERS", "1")


def _wait_for(condition: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(60)
def test_worker_process_runs_niced_is_restarted_and_stops(sandbox_env: None) -> None:
    worker = WorkerProcess(restart_delay=0.1)
    worker.start()
    try:
        first = worker.pid
        assert first is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, first) == min(19, ours + NICENESS)
        os.kill(first, signal.SIGKILL)
        assert _wait_for(lambda: worker.pid not in (None, first)), "no new worker process"
        second = worker.pid
    finally:
        worker.stop(timeout=20)
    assert second is not None
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux only")
def test_worker_process_scheduled_idle(sandbox_env: None) -> None:
    """`serve --worker-nice idle`: the worker gets only the CPU the web process leaves."""
    worker = WorkerProcess(niceness="idle")
    worker.start()
    try:
        assert worker.pid is not None
        assert os.sched_getscheduler(worker.pid) == os.SCHED_IDLE
    finally:
        worker.stop(timeout=20)


@pytest.mark.timeout(60)
def test_worker_process_at_the_same_priority(sandbox_env: None) -> None:
    worker = WorkerProcess(niceness=0)
    worker.start()
    try:
        assert worker.pid is not None
        priority = os.getpriority(os.PRIO_PROCESS, worker.pid)
        assert priority == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        worker.stop(timeout=20)


@pytest.mark.timeout(90)
def test_worker_process_stops_when_the_server_dies_unannounced(sandbox_env: None) -> None:
    """A SIGKILLed `serve` cannot stop its worker: the worker must not live on, orphaned."""
    script = (
        "import sys, time\n"
        "from whatsapp_api_integration.cli.worker_process import WorkerProcess\n"
        "worker = WorkerProcess(niceness=0)\n"
        "worker.start()\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        assert _wait_for(lambda: not _alive(child), seconds=60), "the worker outlived its server"
    finally:
        server.kill()


@pytest.mark.timeout(60)
def test_a_signal_to_the_servers_group_does_not_reach_the_worker(sandbox_env: None) -> None:
    """Ctrl-C or `kill -TERM -<pgid>` must reach the worker once (through `stop`), not twice:
    a second SIGTERM tells a worker to drop the jobs it is finishing."""
    worker = WorkerProcess(niceness=0)
    worker.start()
    try:
        assert worker.pid is not None
        assert os.getpgid(worker.pid) != os.getpgid(0)
    finally:
        worker.stop(timeout=20)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
