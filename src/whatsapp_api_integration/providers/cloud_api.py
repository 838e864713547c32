"""Meta's WhatsApp Cloud API (Graph API): send messages, upload and download media.

One pooled `httpx.Client` per instance, safe to share between worker threads, and for the
worker process's event loop an aiohttp session (`send_async`: several times less CPU per
request than httpx's async client, docs/decisions.md). The access token goes only into the
`Authorization` header: it is never part of a log line or an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from whatsapp_api_integration.core.outbound import to_cloud_api
from whatsapp_api_integration.providers import SendError, SendResult
from whatsapp_api_integration.providers.errors import classify

if TYPE_CHECKING:
    import aiohttp

    from whatsapp_api_integration.core.events import Provider, Recipient
    from whatsapp_api_integration.core.outbound import OutgoingMessage

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"


class CloudApiClient:
    """A `Sender` for the Cloud API, plus the media endpoints."""

    provider: Provider = "cloud_api"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeout: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        if not token:
            raise ValueError("the Cloud API needs an access token (WPP_AUTHORIZATION_TOKEN)")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version.strip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
            ),
        )

    def _url(self, *parts: str) -> str:
        return "/".join((self.base_url, self.api_version, *parts))

    # ---- sending --------------------------------------------------------------------------

    def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        return self.send_body(phone_number_id, to_cloud_api(message, recipient, reply_to=reply_to))

    def send_body(self, phone_number_id: str, body: Mapping[str, Any]) -> SendResult:
        """POST an already rendered `/messages` body; the wamid of the accepted message."""
        return _sent(self._request("POST", self._url(phone_number_id, "messages"), json=dict(body)))

    async def send_async(
        self, phone_number_id: str, message: OutgoingMessage, recipient: Recipient
    ) -> SendResult:
        """`send` on an event loop (the worker process, `Gateway.run_event_loop_worker`)."""
        body = to_cloud_api(message, recipient)
        try:
            import aiohttp
        except ImportError:  # not installed: a thread of the loop's pool sends
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self.send_body, phone_number_id, body)
        if self._session is None:  # made on the loop that uses it
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._token}"},
                connector=aiohttp.TCPConnector(limit=0),
                # Per read, as httpx's: a `total` timer runs on the loop, and a loop kept busy
                # (or a worker on SCHED_IDLE) would take an answer Meta already gave for a
                # timeout, and the retry would send the reply again.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=min(self.timeout, 5.0), sock_read=self.timeout
                ),
            )
        url = self._url(phone_number_id, "messages")
        try:
            async with self._session.post(url, json=body) as response:
                status, headers, content = response.status, response.headers, await response.read()
        except asyncio.TimeoutError as error:
            raise _failed(f"POST {_path(url)}", error, timed_out=True) from None
        except aiohttp.ClientError as error:
            raise _failed(f"POST {_path(url)}", error, timed_out=False) from None
        return _sent(_answer(status, headers, content, self._token))

    async def aclose(self) -> None:
        """Close the event loop's session (on that loop, before it ends)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---- media ----------------------------------------------------------------------------

    def upload_media(
        self, phone_number_id: str, data: bytes, mime_type: str, filename: str = "file"
    ) -> str:
        """Upload a file for later sends; the media id (valid for 30 days)."""
        answer = self._request(
            "POST",
            self._url(phone_number_id, "media"),
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        media_id = answer.get("id")
        if not isinstance(media_id, str):
            raise SendError("Graph API media upload answered without an id", retryable=False)
        return media_id

    def media_url(self, media_id: str) -> str:
        """The short-lived (5 minutes) download URL of a media id."""
        answer = self._request("GET", self._url(media_id))
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise SendError(f"Graph API has no url for media {media_id}", retryable=False)
        return url

    def download_media(self, media_id: str) -> bytes:
        """The media's bytes: its URL, then the file itself (which also needs the token)."""
        url = self.media_url(media_id)
        try:
            response = self._client.get(url)
        except httpx.TransportError as error:
            timed_out = isinstance(error, httpx.TimeoutException)
            raise _failed("media download", error, timed_out=timed_out) from None
        if response.status_code >= 400:
            raise _error(response.status_code, response.headers, response.content, self._token)
        return response.content

    def close(self) -> None:
        self._client.close()

    # ---- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.TransportError as error:
            timed_out = isinstance(error, httpx.TimeoutException)
            raise _failed(f"{method} {_path(url)}", error, timed_out=timed_out) from None
        return _answer(response.status_code, response.headers, response.content, self._token)


def _answer(status: int, headers: Mapping[str, str], content: bytes, token: str) -> dict[str, Any]:
    """Graph's JSON object answer, or the SendError its status and body say."""
    if status >= 400:
        raise _error(status, headers, content, token)
    try:
        answer = json.loads(content)
    except ValueError:
        raise SendError(
            f"Graph API answered {status} with a body that is not JSON",
            retryable=False,
            http_status=status,
        ) from None
    if not isinstance(answer, dict):
        raise SendError(
            "Graph API answered with JSON that is not an object",
            retryable=False,
            http_status=status,
        )
    return answer


def _sent(answer: Mapping[str, Any]) -> SendResult:
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        message_id = messages[0].get("id")
        if isinstance(message_id, str) and message_id:
            return SendResult(message_id=message_id)
    # Accepted (2xx) but without an id: sending again could duplicate the message.
    raise SendError(
        "Graph API accepted the message but its answer has no messages[0].id", retryable=False
    )


def _path(url: str) -> str:
    return httpx.URL(url).path


def _failed(what: str, error: Exception, *, timed_out: bool) -> SendError:
    kind = "timed out" if timed_out else "failed"
    return SendError(f"Graph API {what} {kind}: {type(error).__name__}", retryable=True)


def _error(status: int, headers: Mapping[str, str], content: bytes, token: str) -> SendError:
    """A SendError from Graph's `{"error": {"code", "message", "error_data": {...}}}`.

    The error's text is stored (dead letters) and shown (`dead-letters`, ops pages), where the
    log's redaction does not reach: an answer that repeats our access token (a proxy, a
    misbehaving server) has it masked here.
    """
    code: int | None = None
    detail = ""
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        raw_code = error.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        message = error.get("message")
        details = error.get("error_data", {})
        details = details.get("details") if isinstance(details, dict) else None
        detail = "; ".join(str(part) for part in (message, details) if part)
    retryable = classify(code, status)
    text = f"Graph API answered {status}"
    if code is not None:
        text += f" with code {code}"
    if detail:
        text += f": {detail.replace(token, '****')[:500]}"
    return SendError(
        text,
        retryable=retryable,
        code=code,
        http_status=status,
        retry_after=parse_retry_after(headers.get("Retry-After")),
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
