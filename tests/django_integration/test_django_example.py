"""examples/django-project as its README runs it: `manage.py migrate`, `runserver`, Meta's
handshake and signed messages over HTTP, `manage.py whatsapp_worker` answering through the
project's bot (Django models written by the worker) and sending to a fake Graph API.

Run twice: with DRF importable (the app serves DRF's views; `whatsapp_worker` answers) and
with `rest_framework` unimportable (a package of that name that raises ImportError comes
first on PYTHONPATH), where the app falls back to plain Django views (and the web process's
worker threads answer). Each run is its own processes, so the
example's settings never meet the tests' Django configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes import FakeGraph, fake_graph_fixture, messages_body, text_body  # noqa: F401 (fixtures)
from web_support import free_port, wait_until
from whatsapp_api_integration.core.signature import sign

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django-project"
APP_SECRET = "example-app-secret-0123456789"
VERIFY_TOKEN = "example-verify-token-4321"
CONTACT = "5561987654321"


@pytest.fixture(params=["drf", "plain"])
def example_env(
    request: pytest.FixtureRequest, tmp_path: Path, fake_graph: FakeGraph
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WPP_", "SERPRO_", "RASA_", "DATABASE_", "WORKERS", "DJANGO_"))
    }
    env.update(
        EXAMPLE_DATABASE=str(tmp_path / "db.sqlite3"),
        WPP_AUTHORIZATION_TOKEN=fake_graph.token,
        WPP_API_BASE_URL=fake_graph.url,
        WPP_APP_SECRET=APP_SECRET,
        WPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WPP_PHONE_NUMBER_IDENTIFIER="106540352242922",
        # drf: the web process only stores and `whatsapp_worker` answers; plain: the web
        # process's own worker threads answer (and write the votes with the ORM there).
        WORKERS="0" if request.param == "drf" else "2",
        PYTHONUNBUFFERED="1",
    )
    if request.param == "plain":
        hidden = tmp_path / "no-drf" / "rest_framework"
        hidden.mkdir(parents=True)
        (hidden / "__init__.py").write_text(
            "raise ImportError('DRF is hidden for this test', name='rest_framework')\n"
        )
        env["PYTHONPATH"] = os.pathsep.join(
            [str(hidden.parent), *filter(None, [env.get("PYTHONPATH")])]
        )
    env["EXAMPLE_MODE"] = request.param
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Background:
    """A `manage.py` command running in its own process group."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log_path = log
        self.log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLE,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log_file.close()
        return self.process.returncode


@pytest.fixture
def server(example_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Background]]:
    migrated = manage(example_env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "WhatsApp gateway store: migrations at" in migrated.stdout
    port = free_port()
    runserver = Background(
        example_env, tmp_path / "runserver.log", "runserver", "--noreload", f"127.0.0.1:{port}"
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/webhooks/whatsapp/", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return runserver.process.poll() is not None

    try:
        assert wait_until(up, timeout=30), runserver.log()
        assert runserver.process.poll() is None, runserver.log()
        yield url, runserver
    finally:
        runserver.stop()


def post(url: str, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
    return httpx.post(f"{url}/webhooks/whatsapp/webhook", content=body, headers=headers)


def tap(payload: str, title: str) -> bytes:
    return messages_body(
        {
            "from": CONTACT,
            "id": f"wamid.example.{uuid.uuid4().hex}",
            "timestamp": str(int(time.time())),
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": payload, "title": title},
            },
        }
    )


def test_the_example_project_runs_the_participation_flow(
    server: tuple[str, Background],
    example_env: dict[str, str],
    fake_graph: FakeGraph,
    tmp_path: Path,
) -> None:
    url, runserver = server
    drf = example_env["EXAMPLE_MODE"] == "drf"
    handshake = httpx.get(
        f"{url}/webhooks/whatsapp/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
    )
    assert (handshake.status_code, handshake.text) == (200, "42")
    assert ("Allow" in handshake.headers) is drf  # DRF's views add it; plain Django's do not
    assert wait_until(lambda: "hub.verify_token=****" in runserver.log()), runserver.log()
    assert VERIFY_TOKEN not in runserver.log()  # runserver's access log is redacted

    start = text_body(f"wamid.example.{uuid.uuid4().hex}", "/start 42")
    assert post(url, start).status_code == 200
    assert post(url, start).json()["duplicates"] == 1  # a redelivery is not answered again
    forged = httpx.post(
        f"{url}/webhooks/whatsapp/webhook",
        content=start,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert forged.status_code == 401
    for payload, title in (("0", "Pular"), ("1", "Concordo"), ("Rádio", "Rádio")):
        assert post(url, tap(payload, title)).status_code == 200

    if drf:
        worker = Background(example_env, tmp_path / "worker.log", "whatsapp_worker")
        try:
            assert wait_until(lambda: len(fake_graph.message_bodies) >= 6, timeout=60), worker.log()
        finally:
            assert worker.stop() == 0, worker.log()
        assert "stopping after the jobs in hand" in worker.log()
    else:
        answered = wait_until(lambda: len(fake_graph.message_bodies) >= 6, timeout=60)
        assert answered, runserver.log()

    sent = fake_graph.message_bodies
    assert {body["to"] for body in sent} == {CONTACT}
    assert sent[0]["text"]["body"] == "Olá, Contato 4321! Bem-vindo(a) à conversa 42."
    assert sent[1]["interactive"]["type"] == "button"
    assert [b["reply"]["id"] for b in sent[1]["interactive"]["action"]["buttons"]] == [
        "1",
        "-1",
        "0",
    ]
    assert sent[2]["text"]["body"] == "Voto registrado."
    assert sent[3]["interactive"]["body"]["text"].startswith("Comentário 2 de 2")
    survey = sent[4]["interactive"]
    assert survey["type"] == "list"  # five choices: a list, not buttons
    rows = [row["id"] for section in survey["action"]["sections"] for row in section["rows"]]
    assert rows == [
        "Rádio",
        "Televisão",
        "Redes sociais",
        "Amigos ou família",
        "Site da prefeitura",
    ]
    assert sent[5]["text"]["body"] == "Anotado: Rádio. Até a próxima conversa!"
    assert len(sent) == 6

    votes = manage(
        example_env,
        "shell",
        "-c",
        "import json; from participation.models import Vote; "
        "print(json.dumps(list(Vote.objects.order_by('id').values_list('comment', 'choice'))))",
    )
    assert votes.returncode == 0, votes.stderr
    assert json.loads(votes.stdout.strip().splitlines()[-1]) == [[0, 0], [1, 1]]
