"""Loopback fakes of the services the gateway talks to, for tests (reusable by every module).

- `FakeGraph`: Meta's Graph API. Records every request; answers `/messages` with a fresh wamid
  unless answers were scripted with `script(...)` (used first, in order); serves media.
- `FakeRasa`: Rasa's REST channel. Echoes in Portuguese ("Você disse: …") after an optional
  delay, or returns scripted answers, or plays dead (`down = True` → 503).
- `closed_port_url()`: a URL nobody listens on (connection refused).

Fixtures `fake_graph` and `fake_rasa`: import them in a test module with
`from fakes import fake_graph_fixture, fake_rasa_fixture  # noqa: F401 (fixtures)`.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Answer = tuple[int, Any]  # (HTTP status, JSON document)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class QuietHTTPServer(ThreadingHTTPServer):
    """Says nothing of a client that went away mid-request (a process the test killed, a
    timeout): a daemon thread's traceback would land in whatever test runs next and captures
    stderr. Any other error is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """A QuietHTTPServer on 127.0.0.1:<free port>, serving from a daemon thread; each request
    of one of `methods` goes to `self._dispatch(handler, method)`."""

    methods: tuple[str, ...] = ("GET", "POST")

    def _serve(self) -> None:
        def route(method: str) -> Callable[[BaseHTTPRequestHandler], None]:
            return lambda handler: self._dispatch(handler, method)

        def silent(handler: BaseHTTPRequestHandler, format: str, *args: Any) -> None:
            return None

        handler_class = type(
            "Handler",
            (BaseHTTPRequestHandler,),
            {
                "protocol_version": "HTTP/1.1",
                # else headers and body wait on delayed ACKs (40 ms)
                "disable_nagle_algorithm": True,
                "log_message": silent,
                **{f"do_{method}": route(method) for method in self.methods},
            },
        )
        self.server = QuietHTTPServer(("127.0.0.1", 0), handler_class)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(LoopbackServer):
    """A loopback server that records every request and answers with `handle`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self._serve()

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Recorded(method, handler.path, dict(handler.headers.items()), body)
        with self.lock:
            self.requests.append(request)
        status, payload, headers = self.handle(request)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        content_type = (
            "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        )
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


class FakeGraph(_Server):
    """Meta's Graph API on loopback: `/{version}/{phone_number_id}/messages`, media."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self._answers: deque[tuple[int, Any, dict[str, str]]] = deque()
        self._ids = itertools.count(1)
        self.media: dict[str, bytes] = {}
        super().__init__()

    def script(self, *answers: Answer | tuple[int, Any, dict[str, str]]) -> None:
        """Answer the next `/messages` calls with these (status, json[, headers]), in order."""
        with self.lock:
            for answer in answers:
                status, document, *rest = answer
                self._answers.append((status, document, rest[0] if rest else {}))

    @staticmethod
    def error(code: int, message: str = "error", status: int = 400) -> Answer:
        return status, {
            "error": {
                "message": f"(#{code}) {message}",
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "Afake",
            }
        }

    @property
    def message_requests(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    @property
    def message_bodies(self) -> list[Any]:
        return [request.json for request in self.message_requests]

    def texts(self) -> list[str]:
        """The text bodies of every `/messages` request, in the order they came."""
        return [body["text"]["body"] for body in self.message_bodies if body.get("type") == "text"]

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": {"message": "Invalid OAuth access token", "code": 190}}, {}
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and parts[-1] == "messages":
            with self.lock:
                if self._answers:
                    return self._answers.popleft()
                number = next(self._ids)
            document = request.json or {}
            return (
                200,
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": document.get("to"), "wa_id": document.get("to")}],
                    "messages": [{"id": f"wamid.fake.{number}"}],
                },
                {},
            )
        if request.method == "POST" and parts[-1] == "media":
            media_id = f"media.{next(self._ids)}"
            self.media[media_id] = request.body
            return 200, {"id": media_id}, {}
        if request.method == "GET" and parts[0] == "files":
            content = self.media.get(parts[-1])
            return (
                (200, content, {}) if content is not None else (404, {"error": {"code": 100}}, {})
            )
        if request.method == "GET" and len(parts) == 2:
            media_id = parts[1]
            if media_id not in self.media:
                return 400, self.error(100, "Unsupported get request")[1], {}
            return (
                200,
                {
                    "url": f"{self.url}/files/{media_id}",
                    "mime_type": "image/jpeg",
                    "id": media_id,
                    "messaging_product": "whatsapp",
                },
                {},
            )
        return 404, {"error": {"message": "unknown path", "code": 100}}, {}


class FakeRasa(_Server):
    """Rasa's REST channel on loopback: `POST /webhooks/rest/webhook`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.down = False  # True: answer 503, as Rasa does while its model loads
        self.answer: Callable[[dict[str, Any]], Any] | None = None
        self._scripted: deque[Answer] = deque()
        super().__init__()

    def script(self, *answers: Answer) -> None:
        with self.lock:
            self._scripted.extend(answers)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The JSON of every webhook call, in the order they came."""
        with self.lock:
            return [r.json for r in self.requests if r.path == "/webhooks/rest/webhook"]

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            return 503, {"error": "model loading"}, {}
        with self.lock:
            if self._scripted:
                status, document = self._scripted.popleft()
                return status, document, {}
        if request.path != "/webhooks/rest/webhook":
            return 404, {"error": "not found"}, {}
        document = request.json
        if self.answer is not None:
            return 200, self.answer(document), {}
        return (
            200,
            [{"recipient_id": document["sender"], "text": f"Você disse: {document['message']}"}],
            {},
        )


class FakeRasaApi(FakeRasa):
    """Rasa with `--enable-api`: the REST channel plus `trigger_intent`, which answers with
    what the bot says (no `output_channel` given, so Rasa collects and returns them)."""

    def __init__(self, messages: list[dict[str, Any]] | None = None) -> None:
        self.trigger_answer: tuple[int, Any] = (200, {"tracker": {}, "messages": messages or []})
        super().__init__()

    @property
    def triggers(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if "/trigger_intent" in r.path]

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if "/trigger_intent" in request.path:
            status, document = self.trigger_answer
            return status, document, {}
        return super().handle(request)


def closed_port_url() -> str:
    """http://127.0.0.1:<a port just freed>: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(name="fake_graph")
def fake_graph_fixture() -> Iterator[FakeGraph]:
    server = FakeGraph()
    yield server
    server.close()


@pytest.fixture(name="fake_rasa")
def fake_rasa_fixture() -> Iterator[FakeRasa]:
    server = FakeRasa()
    yield server
    server.close()


# ---- webhook bodies -------------------------------------------------------------------------

PHONE_NUMBER_ID = "106540352242922"


def cloud_body(value: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID) -> bytes:
    """A Cloud API webhook body around one `value`."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        **value,
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document).encode()


def text_message(wamid: str, text: str, wa_id: str = "5561987654321") -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": wamid,
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": text},
    }


def messages_body(*messages: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID) -> bytes:
    wa_ids = sorted({m["from"] for m in messages if "from" in m})
    contacts = [{"profile": {"name": f"Contato {w[-4:]}"}, "wa_id": w} for w in wa_ids]
    return cloud_body({"contacts": contacts, "messages": list(messages)}, phone_number_id)


def text_body(wamid: str, text: str, wa_id: str = "5561987654321") -> bytes:
    return messages_body(text_message(wamid, text, wa_id))


def status_body(wamid: str, status: str, recipient: str = "5561987654321") -> bytes:
    item = {"id": wamid, "status": status, "timestamp": "1750000001", "recipient_id": recipient}
    return cloud_body({"statuses": [item]})
