"""`whatsapp-gateway status`: what it reads from the database, as text and as JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fakes import FakeGraph, fake_graph_fixture, text_body  # noqa: F401 (a fixture)
from web_support import VENV_BIN
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.providers.cloud_api import CloudApiClient

pytestmark = pytest.mark.timeout(60)

NUMBER = "106540352242922"


def run_status(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("WPP_", "DATABASE_"))}
    environment.update(env)
    return subprocess.run(
        [str(VENV_BIN / "whatsapp-gateway"), "status", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_status_shows_the_queue_the_work_in_flight_and_the_sends(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    client = CloudApiClient("test-token", base_url=fake_graph.url, timeout=5)
    backend = CallableBackend(lambda incoming: [{"text": f"ok {incoming.text}"}])
    gateway = Gateway(GatewayConfig(database_url=url, workers=0), backend, {"cloud_api": client})
    try:

        def deliver(wamid: str, contact: str) -> None:
            body = text_body(wamid, wamid, contact)
            gateway.accept(body, {}, parse_webhook(body))

        deliver("wamid.a", "5561900000001")
        deliver("wamid.b", "5561900000002")
        assert gateway.process_available() == 2  # two answered, two replies sent
        fake_graph.script(FakeGraph.error(131026, "Message Undeliverable"))
        deliver("wamid.c", "5561900000003")
        assert gateway.process_available() == 1  # a dead letter
        deliver("wamid.d", "5561900000004")
        assert gateway.store.claim("a-worker", lease_seconds=600) is not None  # in flight
        deliver("wamid.e", "5561900000005")  # waiting
    finally:
        gateway.close()

    result = run_status(tmp_path, "--json", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["queue"]["waiting"] == 1
    assert report["queue"]["due"] == 1
    assert report["queue"]["oldest_waiting_seconds"] >= 0
    assert (report["in_flight"], report["expired_leases"]) == (1, 0)
    assert (report["dead_letters"], report["answered"]) == (1, 2)
    assert report["sent"] == {"last_60s": 2, "last_300s": 2}
    assert report["numbers"] == [
        {
            "provider": "cloud_api",
            "phone_number_id": NUMBER,
            "sent": {"last_60s": 2, "last_300s": 2},
        }
    ]
    (bucket,) = report["buckets"]
    assert bucket["key"] == f"cloud_api:{NUMBER}"
    assert bucket["tokens"] <= 80

    text = run_status(tmp_path, DATABASE_URL=url)
    assert text.returncode == 0, text.stderr
    assert "Waiting:         1 message(s), 1 due now" in text.stdout
    assert "In flight:       1 job(s)" in text.stdout
    assert "Dead letters:    1" in text.stdout
    assert f"cloud_api:{NUMBER}: 2 in 60s" in text.stdout
    assert "Pacing:          80/s, burst 80" in text.stdout


def test_status_without_a_database_says_where_it_looked(tmp_path: Path) -> None:
    result = run_status(tmp_path)
    assert result.returncode == 1
    assert "DATABASE_URL: no database at whatsapp_gateway.db" in result.stderr
    assert not (tmp_path / "whatsapp_gateway.db").exists()  # and did not create one


def test_status_hides_the_database_password(tmp_path: Path) -> None:
    result = run_status(tmp_path, DATABASE_URL="postgresql://gateway:s3cr3t-pass@127.0.0.1:1/none")
    assert result.returncode == 1
    assert "s3cr3t-pass" not in result.stderr + result.stdout
    assert "gateway:****@127.0.0.1" in result.stderr
