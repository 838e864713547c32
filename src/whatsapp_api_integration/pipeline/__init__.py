"""The pipeline: stored messages in, answers out (DESIGN.md §2, §10)."""

from whatsapp_api_integration.pipeline.gateway import (
    AcceptResult,
    Gateway,
    GatewayConfig,
    mask_contact,
)
from whatsapp_api_integration.store import DeadLetter

__all__ = ["AcceptResult", "DeadLetter", "Gateway", "GatewayConfig", "mask_contact"]
