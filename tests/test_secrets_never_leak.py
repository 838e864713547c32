"""No secret or token in any log line, answer, error page, CLI output or stored error, over a
whole run of a real `whatsapp-gateway serve` with every secret set (DESIGN §3).

The run is hostile on purpose: handshakes with tokens that contain the real one, signatures and
bearers that are the secrets themselves, secrets in paths and query strings, and a Graph API
that echoes the access token back in its error messages (a proxy or a misbehaving provider
might). Then the server's whole log (DEBUG), every answer, `check-config` and `dead-letters`
output, and the SQLite file are searched for each secret and for all of it but its last four
characters (the most a mask may show). The database is searched too, for the secrets the
callers never sent (a stored error must not carry the access token Graph echoed).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from fakes import FakeGraph, FakeRasa, Recorded
from web_support import VENV_BIN, ServerProcess, text_body, wait_until
from whatsapp_api_integration.core.signature import sign

SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "EAAGleakcheck0token0a8f3c1d9e77",
    "WPP_VERIFY_TOKEN": "verify-leakcheck-5d41402abc4b",
    "WPP_APP_SECRET": "appsecret-leakcheck-7b52009b64fd",
    "SERPRO_WEBHOOK_TOKEN": "serprohook-leakcheck-3c59dc048e88",
    "ADMIN_TOKEN": "admin-leakcheck-1679091c5a88",
    "SERPRO_CLIENT_SECRET": "serpro+client/leakcheck=8f14e45fceea",  # base64-like: +, /, =
}
SERPRO_CLIENT_ID = "5561000000000"
SERPRO_BODY = (Path(__file__).parent / "corpus" / "serpro_text.json").read_bytes()
PHONE_NUMBER_ID = "106540352242922"
LEAKY_CONTACT = "5561900000666"  # Graph's answers about this contact echo the token


class EchoingGraph(FakeGraph):
    """Accepts sends, except to LEAKY_CONTACT: a 401 whose message repeats the Authorization
    header it got, as a careless proxy in front of Graph might."""

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        document = request.json if request.method == "POST" else None
        if isinstance(document, dict) and document.get("to") == LEAKY_CONTACT:
            header = request.headers.get("Authorization", "")
            message = f"Invalid OAuth access token - Cannot parse access token: {header}"
            return 401, {"error": {"message": message, "code": 190, "type": "OAuthException"}}, {}
        return super().handle(request)


class EchoingSerpro(FakeGraph):
    """A SERPRO that refuses everything with a 401 repeating the request: the token request's
    form (client_secret) and any Authorization header."""

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        echoed = f"{request.path} {request.headers.get('Authorization', '')} {request.body!r}"
        return 401, {"message": f"credenciais invalidas: {echoed}"}, {}


@pytest.fixture(name="serpro")
def serpro_fixture() -> Iterator[EchoingSerpro]:
    server = EchoingSerpro()
    yield server
    server.close()


@pytest.fixture(name="graph")
def graph_fixture() -> Iterator[EchoingGraph]:
    server = EchoingGraph(token=SECRETS["WPP_AUTHORIZATION_TOKEN"])
    yield server
    server.close()


@pytest.fixture(name="rasa")
def rasa_fixture() -> Iterator[FakeRasa]:
    server = FakeRasa()
    yield server
    server.close()


def cli(folder: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "whatsapp-gateway"), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return f"$ {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def hostile_requests(url: str) -> list[str]:
    """Everything we send, answered; each answer as text (status, headers, body)."""
    secret, verify, admin = (
        SECRETS["WPP_APP_SECRET"],
        SECRETS["WPP_VERIFY_TOKEN"],
        SECRETS["ADMIN_TOKEN"],
    )
    hook = "/webhooks/whatsapp/webhook"
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=30) as client:

        def handshake(token: str) -> None:
            params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"}
            answers.append(client.get(hook, params=params))

        handshake(verify)
        handshake(verify + "x")
        handshake(verify[:-1])
        handshake(secret)
        for sender, wamid in (("5561988887777", "wamid.leak.ok"), (LEAKY_CONTACT, "wamid.leak.x")):
            body = text_body("oi", wamid=wamid, sender=sender)
            headers = {"X-Hub-Signature-256": sign(body, secret)}
            answers.append(client.post(hook, content=body, headers=headers))
        body = text_body("forjada")
        for signature in (secret, "sha256=" + secret, "sha1=" + secret, sign(body, verify)):
            answers.append(
                client.post(hook, content=body, headers={"X-Hub-Signature-256": signature})
            )
        serpro_bearer = {"Authorization": f"Bearer {SECRETS['SERPRO_WEBHOOK_TOKEN']}"}
        answers.append(client.post(hook, content=SERPRO_BODY, headers=serpro_bearer))
        for bearer in (SECRETS["SERPRO_WEBHOOK_TOKEN"] + "x", admin, secret):
            answers.append(
                client.post(hook, content=body, headers={"Authorization": f"Bearer {bearer}"})
            )
        answers.append(client.post(hook, content=b"{" * 100, headers={"Content-Length": "100"}))
        answers.append(client.put(hook, content=b"{}"))
        answers.append(client.get(f"/webhooks/{secret}"))
        answers.append(client.get("/metrics"))
        answers.append(client.get("/readyz"))
        answers.append(client.get(f"/ops/queue?token={admin}"))
        answers.append(client.get("/ops/queue", headers={"Authorization": f"Bearer {admin}x"}))
        answers.append(client.get(f"/playground?token={admin}"))
        answers.append(client.get(f"/sandbox/conversations/5561988887777?token={admin}"))
    return [f"{r.request.method} {r.status_code} {dict(r.headers)}\n{r.text}" for r in answers]


def leaks(text: str) -> list[str]:
    """The secrets found in `text`: whole, all but their last four characters (the most a
    mask may show), or form- or URL-encoded as a request would carry them."""
    found = []
    for name, value in SECRETS.items():
        forms = {value, value[:-4], quote_plus(value)[:-4], quote(value, safe="")[:-4]}
        if any(form in text for form in forms):
            found.append(name)
    return found


@pytest.mark.timeout(180)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_anywhere_after_a_hostile_run(
    tmp_path: Path, graph: EchoingGraph, serpro: EchoingSerpro, rasa: FakeRasa, log_format: str
) -> None:
    database = tmp_path / "gateway.db"
    env = {
        **SECRETS,
        "WPP_PHONE_NUMBER_IDENTIFIER": PHONE_NUMBER_ID,
        "WPP_API_BASE_URL": graph.url,
        "SERPRO_CLIENT_ID": SERPRO_CLIENT_ID,
        "SERPRO_API_BASE_URL": serpro.url,
        "RASA_URL": rasa.url,
        "DATABASE_URL": f"sqlite:///{database}",
        "WORKERS": "2",
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": log_format,
        "PLAYGROUND": "true",
    }
    with ServerProcess(tmp_path, env) as server:
        answers = hostile_requests(server.url)
        # Both messages done: one answered, one refused by the echoing Graph (code 190).
        assert wait_until(lambda: len(graph.message_requests) >= 2, timeout=30), server.log()
        assert wait_until(lambda: "dead letter" in server.log(), timeout=30), server.log()
        # The SERPRO message's reply met the echoing SERPRO (its token request, refused).
        assert wait_until(lambda: len(serpro.requests) >= 1, timeout=30), server.log()
        assert wait_until(lambda: "check SERPRO_CLIENT_ID" in server.log(), timeout=30), (
            server.log()
        )
        cli_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("WPP_", "SERPRO_", "RASA_", "DATABASE_", "WORKERS"))
        }
        cli_env.update(env)
        outputs = [
            cli(tmp_path, cli_env, "check-config"),
            cli(tmp_path, cli_env, "dead-letters", "list"),
            cli(tmp_path, cli_env, "dead-letters", "show", "1"),
        ]
    log = server.log()
    # The run did what it claims: the hostile requests were refused, the bodies handled.
    assert "webhook refused" in log
    assert '"id": 1' in outputs[1], outputs[1]
    assert (
        graph.message_requests[0]
        .headers["Authorization"]
        .endswith(SECRETS["WPP_AUTHORIZATION_TOKEN"])
    )
    found = {
        "server log": leaks(log),
        "answers": leaks("\n".join(answers)),
        "CLI output": leaks("\n".join(outputs)),
        # A refused body is kept with the signature header it came with; ours sent the app
        # secret itself as one, so that header holds what the caller sent: not a leak.
        "database": [
            name
            for name in leaks(
                b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*")).decode("latin-1")
            )
            if name != "WPP_APP_SECRET"
        ],
    }
    assert found == {"server log": [], "answers": [], "CLI output": [], "database": []}, json.dumps(
        found
    )
