"""The gateway as users run it: a real server process on loopback, real HTTP, the fake Graph and
the fake Rasa of tests/fakes.py. Slow-ish (each test starts a process): a few seconds each."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes import FakeGraph, FakeRasa
from web_support import (
    APP_SECRET,
    CONTACT,
    PHONE_NUMBER_ID,
    REPO_ROOT,
    VENV_BIN,
    VERIFY_TOKEN,
    ServerProcess,
    free_port,
    restore_logging,  # noqa: F401  (autouse fixture)
    text_body,
    wait_until,
)
from whatsapp_api_integration.core.signature import sign

pytestmark = pytest.mark.timeout(120)

WEBHOOK = "/webhooks/whatsapp/webhook"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    server = FakeGraph(token="graph-token-for-tests-0001")
    yield server
    server.close()


@pytest.fixture
def slow_rasa() -> Iterator[FakeRasa]:
    server = FakeRasa(delay=2.0)
    yield server
    server.close()


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    server = FakeRasa()
    yield server
    server.close()


def production_env(
    tmp_path: Path, graph: FakeGraph, rasa: FakeRasa, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "WPP_AUTHORIZATION_TOKEN": graph.token,
        "WPP_API_BASE_URL": graph.url,
        "WPP_APP_SECRET": APP_SECRET,
        "WPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WPP_PHONE_NUMBER_IDENTIFIER": PHONE_NUMBER_ID,
        "RASA_URL": rasa.url,
        "WORKERS": "2",
        **extra,
    }


def post_signed(url: str, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
    return httpx.post(f"{url}{WEBHOOK}", content=body, headers=headers, timeout=10)


def test_sandbox_simulate_gets_the_echo_answer(tmp_path: Path) -> None:
    """The quick start: no settings at all, `serve`, then `simulate` from another shell."""
    with ServerProcess(tmp_path, {"WPP_VERIFY_TOKEN": VERIFY_TOKEN}) as server:
        handshake = httpx.get(
            f"{server.url}{WEBHOOK}",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "5",
            },
        )
        assert handshake.text == "5"
        result = subprocess.run(
            [str(VENV_BIN / "whatsapp-gateway"), "simulate", "olá, gateway", "--url", server.url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr + server.log()
        assert "< Você disse: olá, gateway" in result.stdout
        log = server.log()
    assert "GET /webhooks/whatsapp/webhook 200" in log  # the access log line is there ...
    assert VERIFY_TOKEN not in log  # ... without the token
    assert (tmp_path / "whatsapp_gateway.db").exists()  # the default store, in the cwd


def test_flask_quick_start_answers_and_never_logs_the_verify_token(tmp_path: Path) -> None:
    """`python3 -m flask --app server run -p 5006`, the original's quick start."""
    port = free_port()
    command = [
        str(VENV_BIN / "python"),
        "-m",
        "flask",
        "--app",
        str(REPO_ROOT / "server.py"),
        "run",
        "-p",
        str(port),
    ]
    env = {"WPP_VERIFY_TOKEN": VERIFY_TOKEN}
    with ServerProcess(tmp_path, env, command=command, port=port) as server:
        ok = httpx.get(
            f"{server.url}{WEBHOOK}",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "31",
            },
        )
        assert (ok.status_code, ok.text) == (200, "31")
        wrong = httpx.get(
            f"{server.url}{WEBHOOK}",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "a-guess-9876",
                "hub.challenge": "1",
            },
        )
        assert wrong.status_code == 403
        result = subprocess.run(
            [str(VENV_BIN / "whatsapp-gateway"), "simulate", "pelo flask", "--url", server.url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr + server.log()
        log = server.log()
    assert "GET /webhooks/whatsapp/webhook?hub.mode=subscribe" in log  # the access log is there
    assert VERIFY_TOKEN not in log  # ... without the token
    assert "a-guess-9876" not in log
    assert log.count("started 4 worker thread(s)") == 1


def test_flask_reloader_starts_the_workers_once(tmp_path: Path) -> None:
    """Under `flask run --debug` the reloader's parent loads the app too; only the child
    that serves may work jobs."""
    port = free_port()
    command = [
        str(VENV_BIN / "python"),
        "-m",
        "flask",
        "--app",
        str(REPO_ROOT / "server.py"),
        "run",
        "--debug",
        "-p",
        str(port),
    ]
    with ServerProcess(tmp_path, {}, command=command, port=port) as server:
        result = subprocess.run(
            [str(VENV_BIN / "whatsapp-gateway"), "simulate", "recarregando", "--url", server.url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr + server.log()
        log = server.log()
    assert log.count("started 4 worker thread(s)") == 1, log


def test_production_path_rasa_to_graph(tmp_path: Path, graph: FakeGraph, rasa: FakeRasa) -> None:
    """Signed webhook -> stored -> fake Rasa -> rendered reply -> fake Graph."""
    env = production_env(tmp_path, graph, rasa, LOG_FORMAT="json")
    with ServerProcess(tmp_path, env) as server:
        unsigned = httpx.post(f"{server.url}{WEBHOOK}", content=text_body("sem assinatura"))
        assert unsigned.status_code == 401
        response = post_signed(server.url, text_body("quero votar"))
        assert response.status_code == 200, response.text
        assert wait_until(lambda: len(graph.message_bodies) >= 1), server.log()
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert httpx.get(f"{server.url}/sandbox/conversations/{CONTACT}").status_code == 404
        metrics = httpx.get(f"{server.url}/metrics").text
    (sent,) = graph.message_requests
    assert sent.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
    assert sent.json["to"] == CONTACT
    assert sent.json["text"]["body"] == "Você disse: quero votar"
    assert rasa.messages[0]["sender"] == f"+{CONTACT}"
    assert "whatsapp_http_requests_total" in metrics
    log = server.log()
    assert graph.token not in log
    assert APP_SECRET not in log
    lines = [json.loads(line) for line in log.splitlines()]  # LOG_FORMAT=json: every line
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(line["logger"] == "_granian" for line in lines)  # the server's lines too


def test_sigkill_while_the_bot_thinks_then_restart_gives_exactly_one_reply(
    tmp_path: Path, graph: FakeGraph, slow_rasa: FakeRasa
) -> None:
    """The process dies (SIGKILL: no clean-up) while the message is with the bot; a new
    process on the same database takes the job back when its lease expires: one reply."""
    # The lease must outlive one bot call (2 s here), so RASA_TIMEOUT < lease.
    env = production_env(tmp_path, graph, slow_rasa, RASA_TIMEOUT="2.5", JOB_LEASE_SECONDS="3")
    server = ServerProcess(tmp_path, env)
    try:
        assert post_signed(server.url, text_body("não me perca")).status_code == 200
        assert wait_until(lambda: len(slow_rasa.requests) >= 1), server.log()
    finally:
        server.kill()
    assert graph.message_bodies == []

    with ServerProcess(tmp_path, env) as restarted:
        assert wait_until(lambda: len(graph.message_bodies) >= 1, timeout=30), restarted.log()
        time.sleep(3.0)  # a second reply, if there were one, would come in this time
    assert [b["text"]["body"] for b in graph.message_bodies] == ["Você disse: não me perca"]
    assert len(slow_rasa.requests) == 2  # asked again: the first answer died with the process


def test_a_chunked_body_over_the_limit_gets_413_from_the_real_server(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, {"MAX_BODY_BYTES": "65536"}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(
                f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            chunk = b"x" * 16384
            sent = 0
            try:
                for _ in range(20 * 64):  # up to 20 MiB, the server stops reading long before
                    connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except OSError:
                pass  # the server answered and closed: what we want
            answer = connection.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert sent < 20 << 20 or b"413" in answer
        # A declared length over the limit is refused without reading the body.
        big = httpx.post(f"{server.url}{WEBHOOK}", content=b"{" + b" " * 70000 + b"}", timeout=10)
        assert big.status_code == 413
        assert post_ok(server.url)


def post_ok(url: str) -> bool:
    return (
        httpx.post(f"{url}{WEBHOOK}", content=text_body("ainda vivo"), timeout=10).status_code
        == 200
    )


def test_a_slow_client_does_not_block_others(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, {}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
            body = text_body("devagar")
            head = f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            slow.sendall(head.encode() + body[:10])
            started = time.monotonic()
            assert post_ok(server.url)
            assert time.monotonic() - started < 2.0
            slow.sendall(body[10:])
            answer = slow.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer


def test_worker_command_works_jobs_of_a_server_without_workers(
    tmp_path: Path, graph: FakeGraph, rasa: FakeRasa
) -> None:
    env = production_env(tmp_path, graph, rasa)
    serve = [
        str(VENV_BIN / "whatsapp-gateway"),
        "serve",
        "--no-worker",
        "--port",
        "PORT",
    ]
    port = free_port()
    serve[-1] = str(port)
    with ServerProcess(tmp_path, env, command=serve, port=port) as server:
        assert post_signed(server.url, text_body("para o worker")).status_code == 200
        time.sleep(1.0)
        assert graph.message_bodies == []  # nobody works jobs in the web process
        worker = subprocess.Popen(
            [str(VENV_BIN / "whatsapp-gateway"), "worker"],
            cwd=tmp_path,
            env=server_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_until(lambda: len(graph.message_bodies) == 1), server.log()
        finally:
            worker.terminate()  # SIGTERM: a graceful stop
            output, _ = worker.communicate(timeout=20)
        assert worker.returncode == 0, output
    assert graph.message_bodies[0]["text"]["body"] == "Você disse: para o worker"


def server_env(env: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **env}


def test_serve_refuses_to_start_on_bad_settings_or_store(tmp_path: Path) -> None:
    serve = [str(VENV_BIN / "whatsapp-gateway"), "serve", "--port", str(free_port())]
    bad = subprocess.run(
        serve,
        cwd=tmp_path,
        env=server_env({"WORKERS": "many"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1
    assert "WORKERS: expected a whole number ≥ 0, got 'many'" in bad.stderr
    unreachable = subprocess.run(
        serve,
        cwd=tmp_path,
        env=server_env({"DATABASE_URL": f"sqlite:///{tmp_path}/no/such/folder/x.db"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unreachable.returncode == 1
    assert "DATABASE_URL: cannot open or migrate the store" in unreachable.stderr
