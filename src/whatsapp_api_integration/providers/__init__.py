"""Senders: what delivers a rendered reply to WhatsApp (Meta's Graph API, SERPRO, a sandbox).

A sender turns one `OutgoingMessage` into one request and reports what the provider answered:
its message id on success, a `SendError` that says whether trying again can help otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from whatsapp_api_integration.core.events import Provider, Recipient
    from whatsapp_api_integration.core.outbound import OutgoingMessage


@dataclass(frozen=True)
class SendResult:
    """What the provider answered to an accepted send."""

    message_id: str | None  # WhatsApp's wamid
    request_id: str | None = None  # SERPRO's request id
    status: str | None = None  # an initial status to record, e.g. "sandbox"


class SendError(Exception):
    """A send the provider did not accept.

    `retryable` is decided from the provider's error code first (see `providers.errors`), the
    HTTP status only when there is no code; `retry_after` is the provider's `Retry-After`.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after


class Sender(Protocol):
    provider: Provider

    def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult: ...

    def close(self) -> None: ...


__all__ = ["SendError", "SendResult", "Sender"]
