"""`echo`: answers each message with what the backend was sent; try the gateway without a bot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whatsapp_api_integration.core.contract import IncomingMessage


class EchoBackend:
    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        # Non-text messages arrive as `/whatsapp_media{...}` and the like, so they show too.
        return [{"text": f"Você disse: {incoming.text}"}]

    def close(self) -> None:
        return None
