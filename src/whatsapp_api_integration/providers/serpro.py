"""SERPRO's WhatsApp API (DESIGN §9): OAuth token, every send kind, media, request status,
webhook registration. `SerproClient` (sync, a `Sender`) and `AsyncSerproClient` (asyncio).

The access token:
- comes from `POST /oauth2/token` with the form-encoded `client_id` and `client_secret`;
- is kept in the process and, when a `token_store` is given (the gateway's store), in the
  `provider_tokens` table, so every process and machine of a deployment shares one token
  instead of each fetching its own;
- is renewed before it expires when SERPRO says when (`expires_in`, else the JWT's `exp`);
  otherwise it is used until SERPRO answers 401;
- on a 401, is replaced once (by a newer one another process stored, else a new one) and the
  call is made once more; a second 401 is an error, never a loop.

Every path is a constant below with its source (docs/serpro-protocol.md has the table). The
token and the client secret go only into the token request and the `Authorization` header:
never into a log line or an error message.

SERPRO's error answers are JSON (`message`, `error`, ...) or plain text (404s). Meta's error
code is pulled out of either (`(#131026)`, `code: 131026`) and classified as for the Cloud API
(`providers.errors.classify`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, quote_plus

import httpx

from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import (
    SERPRO_TEMPLATE_PATH,
    SerproRequest,
    serpro_recipient,
    to_serpro,
)
from whatsapp_api_integration.providers import SendError, SendResult
from whatsapp_api_integration.providers.cloud_api import parse_retry_after
from whatsapp_api_integration.providers.errors import classify

if TYPE_CHECKING:
    from whatsapp_api_integration.core.events import Provider
    from whatsapp_api_integration.core.outbound import OutgoingMessage

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.whatsapp.serpro.gov.br"  # [C] SERPRO's docs, the original
# [C] the original project and every client seen: form-encoded client_id + client_secret,
# no grant_type.
TOKEN_PATH = "/oauth2/token"
# [C] SERPRO's docs name the segment {fromPhoneNumberId}; the original filled it with the
# client id (the two are equal in every known setup).
CLIENT_PREFIX = "/client/{phone_number_id}/v2"
REQUEST_STATUS_PATH = "/requisicao/{request_id}"  # [C] SERPRO's "Como consultar status"
WEBHOOK_PATH = "/webhook"  # [C] the original (POST text/plain, DELETE without id)
MEDIA_PATH = "/media"  # [I] upload (multipart mediaType + file) and GET /media/{id}
# Mark as read: two paths in third-party code, no SERPRO doc [?]. Both take `message_id`;
# the later one also `status`, so the body carries both. SERPRO_MARK_READ_PATH chooses.
MARK_READ_PATHS = ("/requisicao/mensagem/status", "/requisicao/informacao-de-leitura")
DEFAULT_MARK_READ_PATH = MARK_READ_PATHS[0]

WebhookForm = Literal["json", "text"]
WEBHOOK_FORMS: tuple[WebhookForm, ...] = ("json", "text")
DEFAULT_WEBHOOK_FORM: WebhookForm = "json"

# Renew this long before the token's end, or a fifth of its life when that is shorter.
RENEW_MARGIN_SECONDS = 60.0


class SerproError(SendError):
    """A SERPRO call that did not succeed; `retryable` as for sends (`providers.errors`)."""


class TokenStore(Protocol):
    """Where processes share the token: the gateway's `Store` has these two methods."""

    def provider_token(self, key: str) -> tuple[str, float | None] | None: ...

    def save_provider_token(self, key: str, token: str, expires_at: float | None) -> None: ...


@dataclass(frozen=True)
class AccessToken:
    value: str
    renew_at: float | None  # when to fetch a new one; None: use it until SERPRO says 401

    def usable(self, now: float) -> bool:
        return self.renew_at is None or now < self.renew_at

    def __repr__(self) -> str:  # never show the token, even in a traceback
        return f"AccessToken(renew_at={self.renew_at!r})"


def token_key(client_id: str, base_url: str) -> str:
    """The `provider_tokens` key of one set of credentials (16 characters, no secret in it)."""
    digest = hashlib.sha256(f"{base_url}|{client_id}".encode()).hexdigest()
    return "serpro:" + digest[:9]


def _jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it: only to plan the renewal."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp > 0:
        return float(exp)
    return None


def parse_token_answer(document: Any, now: float) -> AccessToken:
    """An `AccessToken` from the token endpoint's JSON; SerproError when it has none."""
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise SerproError(
            "SERPRO's token answer has no access_token; check SERPRO_API_BASE_URL",
            retryable=False,
        )
    expires_in = document.get("expires_in")
    expires_at: float | None = None
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        expires_at = now + float(expires_in)
    else:
        expires_at = _jwt_expiry(token)
    if expires_at is None:
        return AccessToken(token, None)
    lifetime = max(0.0, expires_at - now)
    return AccessToken(token, expires_at - min(RENEW_MARGIN_SECONDS, lifetime / 5))


# ---- errors ---------------------------------------------------------------------------------

# Meta's code inside SERPRO's texts: "(#100) Invalid parameter", "code: 131026; details: ...".
# "[Error status code: 400]" is the HTTP status Meta answered SERPRO, not a code.
_META_CODE_PATTERNS = (
    re.compile(r"\(#(\d+)\)"),
    re.compile(r"(?<![Ss]tatus )\bcode\"?\s*[:=]\s*\"?(\d+)", re.IGNORECASE),
)
_MESSAGE_KEYS = ("message", "mensagem", "error", "erro", "erroMsg", "detail", "details")


def meta_code(text: str) -> int | None:
    """Meta's error code embedded in a SERPRO error text, if any."""
    for pattern in _META_CODE_PATTERNS:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


def _error_detail(response: httpx.Response) -> tuple[int | None, str]:
    """(Meta's code or None, a readable detail) from a JSON or plain-text error body."""
    text = response.text.strip()
    try:
        document = response.json()
    except ValueError:
        document = None
    code: int | None = None
    parts: list[str] = []
    if isinstance(document, dict):
        nested = document.get("error")
        if isinstance(nested, dict):  # a Graph-style error passed through
            raw = nested.get("code")
            if isinstance(raw, int) and not isinstance(raw, bool):
                code = raw
            document = {**document, **nested}
        raw = document.get("code")
        if code is None and isinstance(raw, int) and not isinstance(raw, bool) and raw > 999:
            code = raw  # a Meta code, not an HTTP status echoed back
        for key in _MESSAGE_KEYS:
            value = document.get(key)
            if isinstance(value, str) and value.strip():
                parts.append(value.strip())
        detail = "; ".join(dict.fromkeys(parts)) or text
    else:
        detail = text
    if code is None:
        code = meta_code(detail)
    return code, " ".join(detail.split())


def error_from_response(response: httpx.Response, what: str) -> SerproError:
    """The SerproError for a SERPRO answer of 400 or more."""
    status = response.status_code
    code, detail = _error_detail(response)
    text = f"SERPRO answered {status} to {what}"
    if code is not None:
        text += f" with Meta code {code}"
    if detail:
        text += f": {detail[:500]}"
    return SerproError(
        text,
        retryable=classify(code, status),
        code=code,
        http_status=status,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _transport_error(what: str, error: httpx.TransportError) -> SerproError:
    kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
    return SerproError(f"SERPRO {what} {kind}: {type(error).__name__}", retryable=True)


def _json_or_text(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def request_id_of(answer: Any) -> str | None:
    """SERPRO's request id in a send's answer: `id` [I], else `idRequisicao` [I]."""
    if isinstance(answer, dict):
        for key in ("id", "idRequisicao"):
            value = answer.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
    return None


def webhooks_of(answer: Any) -> list[dict[str, Any]]:
    """The registered webhooks: SERPRO answers a bare list [I] or `{"data": [...]}` [I]."""
    items = answer.get("data") if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def webhook_request(url: str, jwt_token: str | None, form: WebhookForm) -> dict[str, Any]:
    """httpx keyword arguments of a registration in either form (DESIGN §9.1)."""
    if form == "text":  # [C] the original: the bare URL as text/plain; no token possible
        return {"content": url.encode(), "headers": {"Content-Type": "text/plain"}}
    return {"json": {"uri": url, "jwtToken": jwt_token or None}}  # [I] newer clients


def template_body(
    name: str,
    recipients: Sequence[str],
    *,
    waba_id: str | None,
    body_parameters: Sequence[str] = (),
    header: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A notification package ("pacote de requisições", [C] SERPRO's docs): one template to
    several recipients, the same parameters for all. Static template parts are not sent."""
    if not recipients:
        raise ValueError("a template package needs at least one recipient")
    body: dict[str, Any] = {"nomeTemplate": name}
    if waba_id:
        body["wabaId"] = waba_id
    body["destinatarios"] = [_destination(recipient) for recipient in recipients]
    if header:
        body["header"] = dict(header)
    if body_parameters:
        body["body"] = {"parametros": [{"tipo": "text", "valor": v} for v in body_parameters]}
    return body


def _destination(recipient: str) -> str:
    """A recipient as SERPRO's `destinatario`: a phone number gets its "+" (DESIGN §6)."""
    text = recipient.strip()
    digits = text.lstrip("+")
    if digits.isdigit():
        return serpro_recipient(Recipient(wa_id=digits))
    return text


# ---- the token, shared by threads and processes ---------------------------------------------


class _Tokens:
    """The token of one set of credentials: in this process, and in the store when given."""

    def __init__(self, key: str, store: TokenStore | None, clock: Callable[[], float]) -> None:
        self.key = key
        self.store = store
        self.clock = clock
        self.current: AccessToken | None = None
        self.lock = threading.Lock()

    def cached(self) -> AccessToken | None:
        """A usable token without asking SERPRO: this process's, else the store's."""
        now = self.clock()
        if self.current is not None and self.current.usable(now):
            return self.current
        stored = self._stored()
        if stored is not None and stored.usable(now):
            self.current = stored
            return stored
        return None

    def replacement(self, failed: str) -> AccessToken | None:
        """After `failed` got a 401: a different usable token someone already fetched."""
        self.current = None if self.current and self.current.value == failed else self.current
        if self.current is not None and self.current.usable(self.clock()):
            return self.current
        stored = self._stored()
        if stored is not None and stored.value != failed and stored.usable(self.clock()):
            self.current = stored
            return stored
        return None

    def adopt(self, token: AccessToken) -> AccessToken:
        self.current = token
        if self.store is not None:
            try:
                self.store.save_provider_token(self.key, token.value, token.renew_at)
            except Exception as error:  # sharing is an optimisation; sending goes on
                logger.warning("could not share SERPRO's token in the store: %s", error)
        return token

    def _stored(self) -> AccessToken | None:
        if self.store is None:
            return None
        try:
            found = self.store.provider_token(self.key)
        except Exception as error:
            logger.warning("could not read SERPRO's shared token from the store: %s", error)
            return None
        return AccessToken(found[0], found[1]) if found else None


# ---- the clients ----------------------------------------------------------------------------


class _Base:
    provider: Provider = "serpro"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        phone_number_id: str | None = None,
        waba_id: str | None = None,
        token_store: TokenStore | None = None,
        webhook_form: WebhookForm = DEFAULT_WEBHOOK_FORM,
        mark_read_path: str = DEFAULT_MARK_READ_PATH,
        timeout: float = 10.0,
        max_connections: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("SERPRO needs SERPRO_CLIENT_ID and SERPRO_CLIENT_SECRET")
        if webhook_form not in WEBHOOK_FORMS:
            raise ValueError(f"webhook_form must be one of {WEBHOOK_FORMS}, got {webhook_form!r}")
        self.client_id = client_id
        self._secret = client_secret
        self.base_url = base_url.rstrip("/")
        # [C] "fromPhoneNumberId" in SERPRO's paths; the client id when not told otherwise.
        self.phone_number_id = phone_number_id or client_id
        self.waba_id = waba_id
        self.webhook_form: WebhookForm = webhook_form
        self.mark_read_path = "/" + mark_read_path.strip("/")
        self.clock = clock
        self._tokens = _Tokens(token_key(client_id, self.base_url), token_store, clock)
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._open()

    def _open(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, base_url={self.base_url!r})"

    def url(self, path: str) -> str:
        """The absolute URL of a path under /client/{fromPhoneNumberId}/v2."""
        prefix = CLIENT_PREFIX.format(phone_number_id=self.phone_number_id)
        return f"{self.base_url}{prefix}{path}"

    def _redact(self, text: str) -> str:
        """Mask our secrets in an error's text, also as a form or URL carries them (SERPRO may
        echo the token request back: `client_secret=a%2Bb%3D` for a secret `a+b=`)."""
        for secret in (self._secret, self._tokens.current.value if self._tokens.current else ""):
            if secret:
                for form in (secret, quote_plus(secret), quote(secret, safe="")):
                    text = text.replace(form, "****")
        return text

    def _error(self, response: httpx.Response, what: str) -> SerproError:
        error = error_from_response(response, what)
        error.args = (self._redact(str(error)),)
        return error

    def _token_request(self) -> dict[str, Any]:
        return {
            "data": {"client_id": self.client_id, "client_secret": self._secret},
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        }

    def _token_from(self, response: httpx.Response) -> AccessToken:
        if response.status_code >= 400:
            error = self._error(response, "the token request")
            if response.status_code in (400, 401, 403):
                error.args = (f"{error.args[0]} (check SERPRO_CLIENT_ID and SERPRO_CLIENT_SECRET)",)
            raise error
        try:
            document = response.json()
        except ValueError:
            raise SerproError(
                f"SERPRO's token answer ({response.status_code}) is not JSON; "
                "check SERPRO_API_BASE_URL",
                retryable=False,
                http_status=response.status_code,
            ) from None
        token = parse_token_answer(document, self.clock())
        logger.info(
            "SERPRO access token obtained%s",
            f", renewed in {token.renew_at - self.clock():.0f}s" if token.renew_at else "",
        )
        return self._tokens.adopt(token)

    @staticmethod
    def _sent(response: httpx.Response, path: str) -> SendResult:
        answer = _json_or_text(response)
        if isinstance(answer, str):
            # Not SERPRO's API speaking (a proxy's or a login page, a wrong base URL): taking
            # it for an accepted send would lose the message without a word.
            raise SerproError(
                f"SERPRO answered {response.status_code} to POST {path} with a body that is not "
                "JSON; check SERPRO_API_BASE_URL",
                retryable=False,
                http_status=response.status_code,
            )
        request_id = request_id_of(answer)
        if request_id is None:
            # Accepted: sending again could duplicate it. Its statuses cannot be matched.
            logger.warning("SERPRO accepted %s but answered no request id", path)
        return SendResult(message_id=None, request_id=request_id)

    def _template(
        self,
        name: str,
        recipients: Sequence[str],
        body_parameters: Sequence[str],
        header: Mapping[str, Any] | None,
    ) -> SerproRequest:
        body = template_body(
            name,
            recipients,
            waba_id=self.waba_id,
            body_parameters=body_parameters,
            header=header,
        )
        return SerproRequest(SERPRO_TEMPLATE_PATH, body)

    def _mark_read_body(self, message_id: str) -> dict[str, Any]:
        return {"message_id": message_id, "status": "read"}

    def _webhook_path(self, webhook_id: str | None) -> str:
        return WEBHOOK_PATH if webhook_id is None else f"{WEBHOOK_PATH}/{webhook_id}"


class SerproClient(_Base):
    """SERPRO's API over one pooled `httpx.Client`; safe to share between worker threads."""

    _client: httpx.Client

    def _open(self) -> None:
        self._client = httpx.Client(timeout=self._timeout, limits=self._limits)

    # ---- the token --------------------------------------------------------------------------

    def access_token(self) -> AccessToken:
        """A usable token: this process's, the store's, else a new one from SERPRO."""
        token = self._tokens.cached()
        if token is not None:
            return token
        with self._tokens.lock:
            return self._tokens.cached() or self._fetch_token()

    def renew_token(self) -> AccessToken:
        """A new token from SERPRO now (e.g. to check the credentials), shared as usual."""
        with self._tokens.lock:
            return self._fetch_token()

    def _fetch_token(self) -> AccessToken:
        try:
            response = self._client.post(self.base_url + TOKEN_PATH, **self._token_request())
        except httpx.TransportError as error:
            raise _transport_error("token request", error) from None
        return self._token_from(response)

    def _after_401(self, failed: AccessToken) -> AccessToken:
        with self._tokens.lock:
            return self._tokens.replacement(failed.value) or self._fetch_token()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated call; on a 401 one new token and one more try. Raises for 4xx/5xx."""
        url = self.url(path)
        what = f"{method} {path}"
        token = self.access_token()
        response = self._attempt(method, url, token, what, kwargs)
        if response.status_code == 401:
            logger.info("SERPRO answered 401 to %s: renewing the token once", what)
            response = self._attempt(method, url, self._after_401(token), what, kwargs)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _attempt(
        self, method: str, url: str, token: AccessToken, what: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        headers = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token.value}"}
        try:
            return self._client.request(method, url, **{**kwargs, "headers": headers})
        except httpx.TransportError as error:
            raise _transport_error(what, error) from None

    # ---- sending ----------------------------------------------------------------------------

    def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        """Send one message. The path uses SERPRO_PHONE_NUMBER_ID (SERPRO's fromPhoneNumberId),
        whatever number the inbound message named: one SERPRO credential sends for one number."""
        if phone_number_id != self.phone_number_id:
            logger.debug(
                "SERPRO sends from %s (message arrived at %s)",
                self.phone_number_id,
                phone_number_id,
            )
        return self.send_request(
            to_serpro(message, recipient, waba_id=self.waba_id, reply_to=reply_to)
        )

    def send_request(self, request: SerproRequest) -> SendResult:
        """POST a SERPRO request (path and body); SERPRO's request id."""
        return self._sent(self._call("POST", request.path, json=request.body), request.path)

    def send_template(
        self,
        name: str,
        recipients: Sequence[str],
        *,
        body_parameters: Sequence[str] = (),
        header: Mapping[str, Any] | None = None,
    ) -> SendResult:
        """A notification package: template `name` to every recipient, one request id."""
        return self.send_request(self._template(name, recipients, body_parameters, header))

    def mark_as_read(self, message_id: str) -> None:
        """Mark an inbound message (its wamid) as read, on SERPRO_MARK_READ_PATH."""
        self._call("POST", self.mark_read_path, json=self._mark_read_body(message_id))

    def request_status(self, request_id: str) -> Any:
        """`GET …/requisicao/{id}`: the package and its sends' states, as SERPRO answers."""
        return _json_or_text(self._call("GET", REQUEST_STATUS_PATH.format(request_id=request_id)))

    # ---- media ------------------------------------------------------------------------------

    def upload_media(self, data: bytes, mime_type: str, filename: str = "file") -> str:
        """Upload a file for later sends; its media id."""
        response = self._call(
            "POST",
            MEDIA_PATH,
            data={"mediaType": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        media_id = request_id_of(_json_or_text(response))
        if media_id is None:
            raise SerproError("SERPRO's media upload answered without an id", retryable=False)
        return media_id

    def download_media(self, media_id: str) -> bytes:
        """A media's bytes (SERPRO answers the file itself)."""
        return self._call("GET", f"{MEDIA_PATH}/{media_id}").content

    # ---- webhook ----------------------------------------------------------------------------

    def list_webhooks(self) -> list[dict[str, Any]]:
        return webhooks_of(_json_or_text(self._call("GET", WEBHOOK_PATH)))

    def register_webhook(
        self, url: str, *, jwt_token: str | None = None, form: WebhookForm | None = None
    ) -> Any:
        """Register `url` for SERPRO's calls; `jwt_token` only in the JSON form."""
        request = webhook_request(url, jwt_token, form or self.webhook_form)
        return _json_or_text(self._call("POST", WEBHOOK_PATH, **request))

    def update_webhook(self, webhook_id: str, url: str, *, jwt_token: str | None = None) -> Any:
        body = {"id": webhook_id, "uri": url, "jwtToken": jwt_token or None}
        return _json_or_text(self._call("PUT", self._webhook_path(webhook_id), json=body))

    def delete_webhook(self, webhook_id: str | None = None) -> Any:
        """Delete one webhook, or (no id, as the EJ bot's README did) the number's webhook."""
        return _json_or_text(self._call("DELETE", self._webhook_path(webhook_id)))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SerproClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSerproClient(_Base):
    """The same API over `httpx.AsyncClient`, for asyncio hosts (a Rasa channel, ASGI).

    The shared token's store is synchronous; its short reads and writes run in a thread."""

    _fetching: asyncio.Lock | None = None

    _client: httpx.AsyncClient

    def _open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout, limits=self._limits)

    def _lock(self) -> asyncio.Lock:
        if self._fetching is None:  # created in the running loop, not at construction
            self._fetching = asyncio.Lock()
        return self._fetching

    async def access_token(self) -> AccessToken:
        current = self._tokens.current
        if current is not None and current.usable(self.clock()):
            return current  # the common case, without a thread hop
        token = await asyncio.to_thread(self._tokens.cached)
        if token is not None:
            return token
        async with self._lock():
            return await asyncio.to_thread(self._tokens.cached) or await self._fetch_token()

    async def _fetch_token(self) -> AccessToken:
        try:
            response = await self._client.post(self.base_url + TOKEN_PATH, **self._token_request())
        except httpx.TransportError as error:
            raise _transport_error("token request", error) from None
        return await asyncio.to_thread(self._token_from, response)

    async def _after_401(self, failed: AccessToken) -> AccessToken:
        async with self._lock():
            replacement = await asyncio.to_thread(self._tokens.replacement, failed.value)
            return replacement or await self._fetch_token()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.url(path)
        what = f"{method} {path}"
        token = await self.access_token()
        response = await self._attempt(method, url, token, what, kwargs)
        if response.status_code == 401:
            logger.info("SERPRO answered 401 to %s: renewing the token once", what)
            token = await self._after_401(token)
            response = await self._attempt(method, url, token, what, kwargs)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    async def _attempt(
        self, method: str, url: str, token: AccessToken, what: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        headers = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token.value}"}
        try:
            return await self._client.request(method, url, **{**kwargs, "headers": headers})
        except httpx.TransportError as error:
            raise _transport_error(what, error) from None

    async def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        return await self.send_request(
            to_serpro(message, recipient, waba_id=self.waba_id, reply_to=reply_to)
        )

    async def send_request(self, request: SerproRequest) -> SendResult:
        response = await self._call("POST", request.path, json=request.body)
        return self._sent(response, request.path)

    async def send_template(
        self,
        name: str,
        recipients: Sequence[str],
        *,
        body_parameters: Sequence[str] = (),
        header: Mapping[str, Any] | None = None,
    ) -> SendResult:
        return await self.send_request(self._template(name, recipients, body_parameters, header))

    async def mark_as_read(self, message_id: str) -> None:
        await self._call("POST", self.mark_read_path, json=self._mark_read_body(message_id))

    async def request_status(self, request_id: str) -> Any:
        path = REQUEST_STATUS_PATH.format(request_id=request_id)
        return _json_or_text(await self._call("GET", path))

    async def upload_media(self, data: bytes, mime_type: str, filename: str = "file") -> str:
        response = await self._call(
            "POST",
            MEDIA_PATH,
            data={"mediaType": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        media_id = request_id_of(_json_or_text(response))
        if media_id is None:
            raise SerproError("SERPRO's media upload answered without an id", retryable=False)
        return media_id

    async def download_media(self, media_id: str) -> bytes:
        return (await self._call("GET", f"{MEDIA_PATH}/{media_id}")).content

    async def list_webhooks(self) -> list[dict[str, Any]]:
        return webhooks_of(_json_or_text(await self._call("GET", WEBHOOK_PATH)))

    async def register_webhook(
        self, url: str, *, jwt_token: str | None = None, form: WebhookForm | None = None
    ) -> Any:
        request = webhook_request(url, jwt_token, form or self.webhook_form)
        return _json_or_text(await self._call("POST", WEBHOOK_PATH, **request))

    async def update_webhook(
        self, webhook_id: str, url: str, *, jwt_token: str | None = None
    ) -> Any:
        body = {"id": webhook_id, "uri": url, "jwtToken": jwt_token or None}
        return _json_or_text(await self._call("PUT", self._webhook_path(webhook_id), json=body))

    async def delete_webhook(self, webhook_id: str | None = None) -> Any:
        return _json_or_text(await self._call("DELETE", self._webhook_path(webhook_id)))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncSerproClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MARK_READ_PATH",
    "DEFAULT_WEBHOOK_FORM",
    "MARK_READ_PATHS",
    "WEBHOOK_FORMS",
    "AccessToken",
    "AsyncSerproClient",
    "SerproClient",
    "SerproError",
    "TokenStore",
    "WebhookForm",
    "error_from_response",
    "meta_code",
    "parse_token_answer",
    "template_body",
    "token_key",
]
