"""`manage.py whatsapp_worker` stops as `whatsapp-gateway worker` does (pipeline/process.py):
SIGTERM or SIGINT lets the job in hand finish, a second signal gives it back to the queue at
once. In a subprocess of its own (signals, and a Django configured for this test only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import text_body
from web_support import wait_until
from whatsapp_api_integration.backends.echo import EchoBackend
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.store import Store

pytestmark = pytest.mark.timeout(120)

SLOW_BOT = """
import pathlib
import time


def answer(incoming):
    pathlib.Path(__file__).with_name("asked").touch()
    time.sleep(60)
    return [{"text": "tarde demais"}]
"""

SCRIPT = """
import sys

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "whatsapp_api_integration.integrations.django",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    USE_TZ=True,
    WHATSAPP_GATEWAY={"DATABASE_URL": sys.argv[2]},
    ANSWER_BACKEND="slow_bot:answer",
    WPP_PHONE_NUMBER_IDENTIFIER="106540352242922",
    WORKERS=1,
    SHUTDOWN_GRACE_SECONDS=60,
)
django.setup()
from django.core.management import call_command

call_command("whatsapp_worker")
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "slow_bot.py").write_text(SLOW_BOT)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WPP_", "SERPRO_", "RASA_", "DATABASE_", "WORKERS", "DJANGO_"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    feeder = Gateway(GatewayConfig(database_url=url, workers=0), EchoBackend(), {})
    try:
        body = text_body("wamid.django.twice", "pare já")
        feeder.accept(body, {}, parse_webhook(body))
    finally:
        feeder.close()
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "project.sqlite3"), url],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_a_second_signal_gives_the_job_back_without_waiting(
    worker: tuple[subprocess.Popen[bytes], Path, str], tmp_path: Path
) -> None:
    process, log, url = worker

    def shown() -> str:
        return log.read_text(errors="replace")

    assert wait_until(lambda: (tmp_path / "asked").exists(), timeout=60), shown()
    os.killpg(process.pid, signal.SIGINT)
    assert wait_until(lambda: "stopping after the jobs in hand" in shown(), timeout=10), shown()
    os.killpg(process.pid, signal.SIGINT)  # not the 60 s of SHUTDOWN_GRACE_SECONDS
    assert process.wait(30) == 1, shown()
    assert "given back to the queue" in shown()
    store = Store(url)
    try:
        row = store.job_state("wamid.django.twice")
    finally:
        store.close()
    assert row is not None
    assert (row["state"], row["lease_owner"], row["attempts"]) == ("received", None, 0)
