"""Opt-in: the example bot trained by real Rasa, served by `rasa run` with the WhatsApp channel.

    RASA_E2E=1 pytest tests/test_rasa_e2e.py      # in a full Rasa 3.6 environment

Needs full Rasa (TensorFlow included, ~2.7 GB: `pip install rasa==3.6.21` on Python 3.10) plus
this package's `[rasa]` extra and the test tools. Trains `examples/rasa-bot` (seconds: its
pipeline has no TensorFlow component), starts `rasa run actions` and `rasa run` with the
channel in `credentials.yml`, posts signed webhooks as Meta would, and reads the replies the
fake Graph API receives. Not part of CI: the environment is large and training takes minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

if os.environ.get("RASA_E2E") != "1":
    pytest.skip("opt-in: set RASA_E2E=1 in a full Rasa 3.6 environment", allow_module_level=True)
pytest.importorskip("rasa.model_training", reason="needs full Rasa 3.6 (setup-full.sh)")

from fakes import FakeGraph
from web_support import APP_SECRET, PHONE_NUMBER_ID, REPO_ROOT, free_port, wait_until
from whatsapp_api_integration.core.signature import sign

pytestmark = [pytest.mark.rasa, pytest.mark.slow, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
GRAPH_TOKEN = "graph-token-for-e2e-tests-0001"


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeGraph]]:
    project = tmp_path_factory.mktemp("rasa-e2e") / "bot"
    shutil.copytree(REPO_ROOT / "examples" / "rasa-bot", project)
    graph = FakeGraph(token=GRAPH_TOKEN)
    actions_port, rasa_port = free_port(), free_port()
    (project / "endpoints.yml").write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n', "utf-8"
    )
    credentials: dict[str, Any] = {
        "whatsapp_api_integration.integrations.rasa.WhatsAppInput": {
            "wpp_app_secret": APP_SECRET,
            "wpp_authorization_token": GRAPH_TOKEN,
            "wpp_api_base_url": graph.url,
            "wpp_phone_number_identifier": PHONE_NUMBER_ID,
            "database_url": f"sqlite:///{project / 'channel.db'}",
            "workers": 2,
        }
    }
    (project / "credentials.yml").write_text(json.dumps(credentials), "utf-8")  # YAML ⊃ JSON
    trained = subprocess.run(
        [str(BIN / "rasa"), "train", "--fixed-model-name", "bot", "--out", "models"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    actions = start(
        [str(BIN / "rasa"), "run", "actions", "--port", str(actions_port)],
        project,
        project / "actions.log",
    )
    rasa = start(
        [
            str(BIN / "rasa"),
            "run",
            "-m",
            "models/bot.tar.gz",
            "--credentials",
            "credentials.yml",
            "--endpoints",
            "endpoints.yml",
            "-i",
            "127.0.0.1",
            "--port",
            str(rasa_port),
        ],
        project,
        project / "rasa.log",
    )
    url = f"http://127.0.0.1:{rasa_port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/webhooks/whatsapp/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=180), (project / "rasa.log").read_text()[-3000:]
        yield url, graph
    finally:
        stop(rasa)
        stop(actions)
        graph.close()


def post(url: str, wa_id: str, message: dict[str, Any]) -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Maria"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": f"wamid.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                **message,
            }
        ],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
        }
    )
    answer = httpx.post(
        f"{url}/webhooks/whatsapp/webhook",
        content=body.encode(),
        headers={
            "X-Hub-Signature-256": sign(body.encode(), APP_SECRET),
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_the_trained_example_bot_answers_over_whatsapp(bot: tuple[str, FakeGraph]) -> None:
    url, graph = bot
    wa_id = "5561912345678"

    def replies() -> list[dict[str, Any]]:
        return [b for b in graph.message_bodies if b.get("to") == wa_id]

    post(url, wa_id, {"type": "text", "text": {"body": "/start 1"}})
    assert wait_until(lambda: len(replies()) >= 2, timeout=120), replies()
    assert replies()[0]["text"]["body"].startswith("Olá, Maria! Vamos participar")
    buttons = replies()[1]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Concordar", "Discordar", "Pular"]
    for number in range(3):
        reply = buttons[number]["reply"]
        post(
            url,
            wa_id,
            {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": reply}},
        )
        assert wait_until(lambda n=number: len(replies()) >= 3 + n, timeout=120), replies()
    assert replies()[-1]["interactive"]["type"] == "list"
    post(url, wa_id, {"type": "image", "image": {"id": "m1", "mime_type": "image/jpeg"}})
    assert wait_until(lambda: len(replies()) >= 6, timeout=120), replies()
    assert replies()[-1]["text"]["body"].startswith("Recebi seu arquivo")
    post(url, wa_id, {"type": "text", "text": {"body": "ajuda"}})  # the trained NLU this time
    assert wait_until(lambda: len(replies()) >= 7, timeout=120), replies()
    menu = replies()[-1]["interactive"]
    assert menu["type"] == "list"
    assert len(menu["action"]["sections"][0]["rows"]) == 5
