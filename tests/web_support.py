"""Helpers for the web, CLI and end-to-end tests: settings, webhook bodies, server processes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from whatsapp_api_integration.logging_setup import ACCESS_LOGGERS
from whatsapp_api_integration.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
VERIFY_TOKEN = "verify-token-for-tests-1234"
APP_SECRET = "app-secret-for-tests-abcdef987654"
PHONE_NUMBER_ID = "106540352242922"
CONTACT = "5561987654321"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """create_app configures the root logger; put it back so other modules' tests see
    logging as they left it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {name: logging.getLogger(name) for name in ("alembic", *ACCESS_LOGGERS)}
    saved = {name: (list(lg.filters), lg.level) for name, lg in loggers.items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in loggers.items():
        logger.filters[:], level_of = saved[name]
        logger.setLevel(level_of)


def settings_for(tmp_path: Path, **env: str) -> Settings:
    """Settings as a deployment in `tmp_path` would read them (no files, no os.environ)."""
    base = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "WORKERS": "0",
        "WPP_VERIFY_TOKEN": VERIFY_TOKEN,
    }
    base.update(env)
    return load_settings(base, env_files=())


def message_value(
    text: str = "oi",
    *,
    wamid: str | None = None,
    sender: str = CONTACT,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Maria"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": wamid or f"wamid.test.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }


def cloud_document(value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": dict(value)}]}],
    }


def text_body(text: str = "oi", **options: Any) -> bytes:
    return json.dumps(cloud_document(message_value(text, **options))).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def descendant_pids(root: int) -> list[int]:
    """Every live descendant of process `root` (Linux: read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(") ", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


class ServerProcess:
    """A gateway in its own process on a loopback port: `whatsapp-gateway serve` by default,
    or any command (e.g. `python -m flask --app server run`)."""

    def __init__(
        self,
        cwd: Path,
        env: Mapping[str, str],
        *,
        command: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command or [
            str(VENV_BIN / "whatsapp-gateway"),
            "serve",
            "--port",
            str(self.port),
            "--threads",
            "4",
        ]
        self.log_path = cwd / f"server-{self.port}.log"
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("WPP_", "SERPRO_", "RASA_", "DATABASE_", "WORKERS"))
        }
        environment.update(env)
        environment["PYTHONUNBUFFERED"] = "1"
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=environment,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so its children (granian's workers) can be signalled too
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process tree, as a machine crash would: no clean-up of any kind
        runs. `serve`'s worker process has a session of its own, so killing the group alone
        would leave it to stop gracefully."""
        if self.process.poll() is None:
            descendants = descendant_pids(self.process.pid)
            os.killpg(self.process.pid, signal.SIGKILL)
            for pid in descendants:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.process.wait(10)
        self.log_file.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
