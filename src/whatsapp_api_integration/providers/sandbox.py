"""A sender that sends nothing: sandbox mode (no access token configured).

The pipeline records every reply's request body before sending it, so a sandbox send only has
to invent a wamid and say `sandbox` as its status. The bodies a real send would have POSTed
are also kept in memory (`outbox`, the latest 1,000) for the playground and tests.
"""

from __future__ import annotations

import collections
import threading
import uuid
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.core.outbound import to_cloud_api
from whatsapp_api_integration.providers import SendResult

if TYPE_CHECKING:
    from whatsapp_api_integration.core.events import Provider, Recipient
    from whatsapp_api_integration.core.outbound import OutgoingMessage
    from whatsapp_api_integration.store import Store

SANDBOX_STATUS = "sandbox"
SANDBOX_WAMID_PREFIX = "wamid.sandbox."


class SandboxSender:
    def __init__(
        self, store: Store | None = None, provider: Provider = "cloud_api", keep: int = 1000
    ) -> None:
        self.store = store  # kept for hosts that look sends up; the pipeline records them
        self.provider = provider
        self.outbox: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()

    def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        body = to_cloud_api(message, recipient, reply_to=reply_to)
        wamid = f"{SANDBOX_WAMID_PREFIX}{uuid.uuid4().hex}"
        with self._lock:
            self.outbox.append({"phone_number_id": phone_number_id, "wamid": wamid, "body": body})
        return SendResult(message_id=wamid, status=SANDBOX_STATUS)

    def close(self) -> None:
        return None
