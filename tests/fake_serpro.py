"""A loopback fake of SERPRO's WhatsApp API, speaking the protocol as docs/serpro-protocol.md
records it, for tests (and for trying the gateway by hand: `python tests/fake_serpro.py`).

- `POST /oauth2/token`: form-encoded `client_id` + `client_secret` → `{"access_token",
  "token_type", "expires_in"}`; tokens expire by the fake's `clock` (advance it with `advance`),
  and `revoke_tokens()` makes every token issued so far answer 401.
- `/client/{fromPhoneNumberId}/v2/...`: Bearer required; each send path checks its Portuguese
  fields (400 with a JSON `message` when one is missing or wrong) and answers `{"id"}`, the
  request id; `GET /requisicao/{id}`; media upload (multipart `mediaType` + `file`) and download;
  both mark-as-read paths; webhook CRUD in both registration forms.
- Anything else: a plain-text 404, as SERPRO's gateway answers unknown paths.
- `script(status, body[, content_type])`: the next send answers this instead.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from fakes import LoopbackServer

CLIENT_ID = "642958872237822"
CLIENT_SECRET = "serpro-secret-for-tests-0001"
WABA_ID = "472202335973627"

Reply = tuple[int, Any, str]  # status, body (JSON-able, str or bytes), content type

SEND_PATHS = {
    "requisicao/mensagem/texto",
    "requisicao/mensagem/interativa-botoes",
    "requisicao/mensagem/interativa-lista",
    "requisicao/mensagem/interativa-localizacao",
    "requisicao/mensagem/media",
    "requisicao/mensagem/template",
}
MARK_READ_PATHS = {"requisicao/mensagem/status", "requisicao/informacao-de-leitura"}


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def kind(self) -> str:
        """The path under /client/{id}/v2, e.g. "requisicao/mensagem/texto"."""
        parts = self.path.split("?")[0].strip("/").split("/")
        return "/".join(parts[3:]) if parts[:1] == ["client"] else "/".join(parts)


class Clock:
    """A clock tests move by hand, shared by the fake and the client under test."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class FakeSerpro(LoopbackServer):
    methods = ("GET", "POST", "PUT", "DELETE")

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        token_lifetime: float | None = 600.0,
        clock: Callable[[], float] | None = None,
        webhook_list_shape: str = "list",  # "list" (a bare array) or "data" ({"data": [...]})
        announce_lifetime: bool = True,  # False: no expires_in, the token still expires
    ) -> None:
        self.announce_lifetime = announce_lifetime
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.clock = clock or Clock()
        self.webhook_list_shape = webhook_list_shape
        self.calls: list[Call] = []
        self.tokens: dict[str, float | None] = {}  # token -> expiry (None: never)
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.requests_by_id: dict[str, dict[str, Any]] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self._scripted: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self.lock = threading.Lock()
        self._serve()

    # ---- for tests ----------------------------------------------------------------------

    def script(self, status: int, body: Any, content_type: str = "application/json") -> None:
        """The next send (or mark-as-read) answers this."""
        with self.lock:
            self._scripted.append((status, body, content_type))

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def calls_to(self, kind: str, method: str | None = None) -> list[Call]:
        with self.lock:
            return [
                c for c in self.calls if c.kind == kind and (method is None or c.method == method)
            ]

    @property
    def token_calls(self) -> list[Call]:
        return self.calls_to("oauth2/token")

    @property
    def sends(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.kind in SEND_PATHS and c.method == "POST"]

    def texts(self) -> list[str]:
        return [c.json["body"] for c in self.sends if c.kind == "requisicao/mensagem/texto"]

    # ---- the protocol -------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        call = Call(method, handler.path, dict(handler.headers.items()), body)
        with self.lock:
            self.calls.append(call)
        try:
            status, payload, content_type = self._answer(call)
        except Exception as error:  # a bug in the fake: say so instead of hanging the client
            status, payload, content_type = 500, f"fake error: {error!r}", "text/plain"
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, call: Call) -> Reply:
        parts = call.path.split("?")[0].strip("/").split("/")
        if call.method == "POST" and parts == ["oauth2", "token"]:
            return self._token(call)
        if len(parts) < 3 or parts[0] != "client" or parts[2] != "v2":
            return 404, "Not Found", "text/plain"
        if parts[1] != self.client_id:
            return (
                403,
                {"message": f"fromPhoneNumberId {parts[1]} is not yours"},
                "application/json",
            )
        if not self._authorized(call):
            return 401, {"message": "Token inválido ou expirado"}, "application/json"
        kind = "/".join(parts[3:])
        if call.method == "POST" and (kind in SEND_PATHS or kind in MARK_READ_PATHS):
            with self.lock:
                if self._scripted:
                    return self._scripted.popleft()
            if kind in MARK_READ_PATHS:
                return self._mark_read(call)
            return self._send(kind, call)
        if call.method == "GET" and parts[3:4] == ["requisicao"] and len(parts) == 5:
            found = self.requests_by_id.get(parts[4])
            if found is None:
                return 404, {"message": "Requisição não encontrada"}, "application/json"
            return 200, found, "application/json"
        if kind == "media" and call.method == "POST":
            return self._upload(call)
        if parts[3:4] == ["media"] and len(parts) == 5 and call.method == "GET":
            media = self.media.get(parts[4])
            if media is None:
                return 404, {"message": "Mídia não encontrada"}, "application/json"
            return 200, media[0], media[1]
        if parts[3:4] == ["webhook"]:
            return self._webhook(call, parts[4] if len(parts) > 4 else None)
        return 404, "Not Found", "text/plain"

    def _token(self, call: Call) -> Reply:
        if (
            call.headers.get("Content-Type", "").split(";")[0]
            != "application/x-www-form-urlencoded"
        ):
            return (
                415,
                {"message": "esperado application/x-www-form-urlencoded"},
                "application/json",
            )
        form = {k: v[0] for k, v in parse_qs(call.body.decode()).items()}
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return 401, {"message": "Credenciais inválidas"}, "application/json"
        token = f"tok-{uuid.uuid4().hex}"
        expiry = None if self.token_lifetime is None else self.clock() + self.token_lifetime
        with self.lock:
            self.tokens[token] = expiry
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.token_lifetime is not None and self.announce_lifetime:
            answer["expires_in"] = int(self.token_lifetime)
        return 200, answer, "application/json"

    def _authorized(self, call: Call) -> bool:
        scheme, _, token = call.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer":
            return False
        with self.lock:
            if token not in self.tokens:
                return False
            expiry = self.tokens[token]
        return expiry is None or self.clock() < expiry

    def _new_id(self) -> str:
        return f"{next(self._ids):08d}-0000-4000-8000-{uuid.uuid4().hex[:12]}"

    def _send(self, kind: str, call: Call) -> Reply:
        try:
            body = call.json
        except ValueError:
            return 400, {"message": "corpo não é JSON"}, "application/json"
        problems = _check_send(kind, body if isinstance(body, dict) else None)
        if problems:
            return 400, {"message": "; ".join(problems)}, "application/json"
        request_id = self._new_id()
        recipients = body.get("destinatarios") or [body.get("destinatario")]
        with self.lock:
            self.requests_by_id[request_id] = {
                "fromPhoneNumberId": self.client_id,
                "nomeTemplate": body.get("nomeTemplate"),
                "quantidadeMensagens": len(recipients),
                "destinatarios": recipients,
                "requisicoesEnvio": [
                    {"destinatario": r, "sent": True, "delivered": False} for r in recipients
                ],
                "aguardandoEnvio": [],
            }
        return 200, {"id": request_id}, "application/json"

    def _mark_read(self, call: Call) -> Reply:
        body = call.json
        if not isinstance(body, dict) or not isinstance(body.get("message_id"), str):
            return 400, {"message": "message_id obrigatório"}, "application/json"
        return 200, {"id": self._new_id()}, "application/json"

    def _upload(self, call: Call) -> Reply:
        content_type = call.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return 400, {"message": "esperado multipart/form-data"}, "application/json"
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + call.body
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = part
        if "mediaType" not in fields or "file" not in fields:
            return 400, {"message": "mediaType e file obrigatórios"}, "application/json"
        media_type = fields["mediaType"].get_content()
        data = fields["file"].get_payload(decode=True)
        media_id = f"media-{next(self._ids)}"
        with self.lock:
            self.media[media_id] = (data, str(media_type).strip())
        return 200, {"id": media_id}, "application/json"

    def _webhook(self, call: Call, webhook_id: str | None) -> Reply:
        if call.method == "GET" and webhook_id is None:
            items = list(self.webhooks.values())
            return (
                200,
                (items if self.webhook_list_shape == "list" else {"data": items}),
                ("application/json"),
            )
        if call.method == "POST" and webhook_id is None:
            content_type = call.headers.get("Content-Type", "").split(";")[0]
            if content_type == "text/plain":
                uri, token = call.body.decode(), None
            elif content_type == "application/json":
                body = call.json
                if not isinstance(body, dict) or not isinstance(body.get("uri"), str):
                    return 400, {"message": "uri obrigatório"}, "application/json"
                uri, token = body["uri"], body.get("jwtToken")
            else:
                return 415, {"message": f"tipo {content_type} não aceito"}, "application/json"
            if not uri.startswith(("http://", "https://")):
                return 400, {"message": "uri inválida"}, "application/json"
            new_id = self._new_id()
            with self.lock:
                self.webhooks[new_id] = {"id": new_id, "uri": uri, "jwtToken": token}
            return 201, {"id": new_id, "uri": uri}, "application/json"
        if call.method == "PUT" and webhook_id is not None:
            body = call.json
            if webhook_id not in self.webhooks:
                return 404, "Not Found", "text/plain"
            if not isinstance(body, dict) or not isinstance(body.get("uri"), str):
                return 400, {"message": "uri obrigatório"}, "application/json"
            with self.lock:
                self.webhooks[webhook_id] = {
                    "id": webhook_id,
                    "uri": body["uri"],
                    "jwtToken": body.get("jwtToken"),
                }
            return 200, self.webhooks[webhook_id], "application/json"
        if call.method == "DELETE":
            with self.lock:
                if webhook_id is None:
                    self.webhooks.clear()
                elif self.webhooks.pop(webhook_id, None) is None:
                    return 404, "Not Found", "text/plain"
            return 204, b"", "application/json"
        return 404, "Not Found", "text/plain"


def _text(body: dict[str, Any], key: str, problems: list[str], limit: int | None = None) -> None:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        problems.append(f"{key} obrigatório")
    elif limit is not None and len(value) > limit:
        problems.append(f"{key} maior que {limit}")


def _check_send(kind: str, body: dict[str, Any] | None) -> list[str]:
    """What SERPRO would refuse in a send's body (the fields of docs/serpro-protocol.md)."""
    if body is None:
        return ["corpo deve ser um objeto"]
    problems: list[str] = []
    if kind == "requisicao/mensagem/template":
        _text(body, "nomeTemplate", problems)
        recipients = body.get("destinatarios")
        if not isinstance(recipients, list) or not recipients:
            problems.append("destinatarios obrigatório")
        parameters = (body.get("body") or {}).get("parametros", [])
        for parameter in parameters:
            if parameter.get("tipo") != "text" or not isinstance(parameter.get("valor"), str):
                problems.append(f"parâmetro inválido: {parameter!r}")
        return problems
    _text(body, "destinatario", problems)
    if kind == "requisicao/mensagem/texto":
        _text(body, "body", problems, 4096)
    elif kind == "requisicao/mensagem/interativa-botoes":
        _text(body, "textoBody", problems, 1024)
        buttons = body.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            problems.append("buttons: de 1 a 3")
        else:
            for button in buttons:
                if not button.get("id") or not button.get("titulo"):
                    problems.append("buttons: id e titulo obrigatórios")
    elif kind == "requisicao/mensagem/interativa-lista":
        _text(body, "textoBody", problems, 1024)
        _text(body, "button", problems, 20)
        sections = body.get("secoes")
        if not isinstance(sections, list) or not sections:
            problems.append("secoes obrigatório")
        else:
            for section in sections:
                _text(section, "titulo", problems, 24)
                for row in section.get("rows") or []:
                    if not row.get("id") or not row.get("titulo") or "descricao" not in row:
                        problems.append("rows: id, titulo e descricao obrigatórios")
    elif kind == "requisicao/mensagem/interativa-localizacao":
        _text(body, "textoBody", problems, 1024)
    elif kind == "requisicao/mensagem/media":
        if body.get("tipoMedia") not in ("image", "video", "audio", "document"):
            problems.append("tipoMedia inválido")
        if not body.get("idMedia") and not body.get("linkMedia"):
            problems.append("idMedia ou linkMedia obrigatório")
    return problems


def serpro_envelope(
    *,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
    phone_number_id: str = CLIENT_ID,
) -> dict[str, Any]:
    """What SERPRO posts to the webhook: the Cloud API `value` object, bare, every array present."""
    envelope: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "556232162929", "phone_number_id": phone_number_id},
        "contacts": contacts or [],
        "messages": messages or [],
        "statuses": statuses or [],
        "errors": [],
        "delay": 0,
    }
    if request_id is not None:
        envelope["idRequisicao"] = request_id
    return envelope


def text_envelope(wamid: str, text: str, wa_id: str = "5561987654321") -> dict[str, Any]:
    return serpro_envelope(
        contacts=[{"profile": {"name": "Maria"}, "wa_id": wa_id}],
        messages=[
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    )


if __name__ == "__main__":  # try the gateway by hand against it
    server = FakeSerpro(clock=time.time)
    print(f"fake SERPRO on {server.url}: SERPRO_CLIENT_ID={CLIENT_ID}", flush=True)
    print(f"SERPRO_CLIENT_SECRET={CLIENT_SECRET} SERPRO_API_BASE_URL={server.url}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.close()
