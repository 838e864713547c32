"""`rasa`: Rasa's REST channel, `POST {RASA_URL}/webhooks/rest/webhook` (DESIGN.md §7)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from whatsapp_api_integration.backends import BackendError, check_responses

if TYPE_CHECKING:
    from whatsapp_api_integration.core.contract import IncomingMessage

logger = logging.getLogger(__name__)


class RasaBackend:
    """One pooled client for all worker threads. Connection errors, timeouts and 5xx are
    retryable (Rasa restarting, a model loading); a 4xx or an answer that is not a list of
    responses is not, and the error says what Rasa answered."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        channel: str = "rest",
        max_connections: int = 100,
    ) -> None:
        self.endpoint = f"{url.rstrip('/')}/webhooks/{channel}/webhook"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        request = {
            "sender": incoming.sender,
            "message": incoming.text,
            "metadata": incoming.metadata,
        }
        try:
            response = self._client.post(self.endpoint, json=request)
        except httpx.TimeoutException as error:
            raise BackendError(
                f"Rasa at {self.endpoint} timed out ({type(error).__name__})", retryable=True
            ) from None
        except httpx.TransportError as error:
            raise BackendError(
                f"Rasa at {self.endpoint} unreachable ({type(error).__name__}: {error})",
                retryable=True,
            ) from None
        if response.status_code >= 500:
            raise BackendError(
                f"Rasa at {self.endpoint} answered {response.status_code}", retryable=True
            )
        if response.status_code >= 400:
            raise BackendError(
                f"Rasa at {self.endpoint} answered {response.status_code}: {response.text[:300]}"
                " (is the `rest` channel enabled in credentials.yml?)",
                retryable=False,
            )
        try:
            answer = response.json()
        except ValueError:
            raise BackendError(
                f"Rasa at {self.endpoint} answered {response.status_code} with a body that is"
                f" not JSON: {response.text[:200]!r}",
                retryable=False,
            ) from None
        return check_responses(answer, f"Rasa at {self.endpoint}")

    def close(self) -> None:
        self._client.close()
