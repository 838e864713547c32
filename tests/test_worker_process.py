"""`serve`'s worker process: started at a lower CPU priority, restarted when it dies, stopped
with SIGTERM."""

from __future__ import annotations

import os
import signal
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
def test_worker_process_at_the_same_priority(sandbox_env: None) -> None:
    worker = WorkerProcess(niceness=0)
    worker.start()
    try:
        assert worker.pid is not None
        priority = os.getpriority(os.PRIO_PROCESS, worker.pid)
        assert priority == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        worker.stop(timeout=20)
