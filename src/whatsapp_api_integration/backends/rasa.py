"""`rasa`: Rasa's REST channel, `POST {RASA_URL}/webhooks/rest/webhook` (DESIGN.md §7)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx

from whatsapp_api_integration.backends import BackendError, check_responses

if TYPE_CHECKING:
    import aiohttp

    from whatsapp_api_integration.core.contract import IncomingMessage

logger = logging.getLogger(__name__)


class RasaBackend:
    """One pooled client for all worker threads (httpx), and one session for an event loop's
    tasks (`answer_async`, aiohttp). Connection errors, timeouts and 5xx are retryable (Rasa
    restarting, a model loading); a 4xx or an answer that is not a list of responses is not,
    and the error says what Rasa answered."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        channel: str = "rest",
        max_connections: int = 100,
    ) -> None:
        self.endpoint = f"{url.rstrip('/')}/webhooks/{channel}/webhook"
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._session: aiohttp.ClientSession | None = None

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        try:
            response = self._client.post(self.endpoint, json=_request(incoming))
        except httpx.TimeoutException as error:
            raise self._timed_out(error) from None
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        return self._responses(response.status_code, response.content)

    async def answer_async(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        """`answer` for an event loop, many questions in flight on one thread (the worker
        process, `Gateway.run_event_loop_worker`). aiohttp, not httpx: with ~150 questions in
        flight httpx's async pool cost 2 to 17 ms of CPU per request here, aiohttp 0.5 ms
        (docs/decisions.md)."""
        try:
            import aiohttp
        except ImportError:  # not installed: a thread of the loop's pool asks
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self.answer, incoming)
        if self._session is None:  # made on the loop that uses it
            self._session = aiohttp.ClientSession(
                # No cap: a slow bot must not make the other questions queue for a connection.
                connector=aiohttp.TCPConnector(limit=0),
                # Per read, as httpx's (see CloudApiClient.send_async): a busy loop must not
                # turn an answer already received into a timeout and ask the bot again.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=min(self.timeout, 5.0), sock_read=self.timeout
                ),
            )
        try:
            async with self._session.post(self.endpoint, json=_request(incoming)) as response:
                status, body = response.status, await response.read()
        except asyncio.TimeoutError as error:
            raise self._timed_out(error) from None
        except aiohttp.ClientError as error:
            raise self._unreachable(error) from None
        return self._responses(status, body)

    def _timed_out(self, error: Exception) -> BackendError:
        return BackendError(
            f"Rasa at {self.endpoint} timed out ({type(error).__name__})", retryable=True
        )

    def _unreachable(self, error: Exception) -> BackendError:
        return BackendError(
            f"Rasa at {self.endpoint} unreachable ({type(error).__name__}: {error})",
            retryable=True,
        )

    def _responses(self, status: int, body: bytes) -> list[dict[str, Any]]:
        text = body.decode("utf-8", "replace")
        if status >= 500:
            raise BackendError(f"Rasa at {self.endpoint} answered {status}", retryable=True)
        if status >= 400:
            raise BackendError(
                f"Rasa at {self.endpoint} answered {status}: {text[:300]}"
                " (is the `rest` channel enabled in credentials.yml?)",
                retryable=False,
            )
        try:
            answer = json.loads(body)
        except ValueError:
            raise BackendError(
                f"Rasa at {self.endpoint} answered {status} with a body that is"
                f" not JSON: {text[:200]!r}",
                retryable=False,
            ) from None
        return check_responses(answer, f"Rasa at {self.endpoint}")

    async def aclose(self) -> None:
        """Close the event loop's session (on that loop, before it ends)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def close(self) -> None:
        self._client.close()


def _request(incoming: IncomingMessage) -> dict[str, Any]:
    return {"sender": incoming.sender, "message": incoming.text, "metadata": incoming.metadata}
