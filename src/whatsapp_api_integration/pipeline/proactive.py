"""Messages the bot sends on its own initiative: reminders, external events, `trigger_intent`.

They answer no inbound message, so they are not jobs: each is rendered by the core like any
reply, recorded (`outbound_messages` with no inbound message) before it is sent, sent at once
by the provider the contact last wrote through, and marked accepted with its wamid or failed
with the provider's error. A failure is not retried here: it is raised to the caller (Rasa's
output channel, the gateway's proactive endpoint), which reports it to the bot or its client.

Who the bot means is its sender id (DESIGN §6: `+<wa_id>`, maybe with the Brazilian 9th digit
added, or a business-scoped user id). The contact's latest inbound message tells which
provider and number it talks to and which wa_id WhatsApp gave; a contact never seen goes to
the default provider and number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import render
from whatsapp_api_integration.pipeline.worker import JobRunner
from whatsapp_api_integration.providers import SendError, SendResult

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import Gateway

logger = logging.getLogger("whatsapp_api_integration.pipeline")


# A business-scoped user id, e.g. BR.13491208655302741918 (the exact shape is Meta's to change).
_BSUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")


class ProactiveError(ValueError):
    """A proactive message that cannot be sent whatever is tried (no sender, bad recipient)."""


@dataclass(frozen=True)
class Route:
    provider: str
    phone_number_id: str | None
    recipient: Recipient
    contact_key: str | None
    contact_id: str


def contact_ids_for(sender_id: str) -> list[str]:
    """The contact ids (wa_id or BSUID) a backend sender id may stand for, likeliest first.

    `+5561987654321` may be a wa_id as is, or one WhatsApp sent without the 9th digit that
    BR_NINTH_DIGIT added back (`556187654321`)."""
    sender_id = sender_id.strip()
    if not sender_id.startswith("+"):
        return [sender_id] if _BSUID.match(sender_id) else []
    digits = sender_id[1:]
    if not (digits.isascii() and digits.isdigit()):
        return []
    found = [digits]
    if len(digits) == 13 and digits.startswith("55") and digits[4] == "9":
        found.append(digits[:4] + digits[5:])
    return found


class ProactiveSender:
    def __init__(self, gateway: Gateway, *, default_provider: str = "cloud_api") -> None:
        self.gateway = gateway
        self.default_provider = default_provider

    def route(self, sender_id: str) -> Route:
        candidates = contact_ids_for(sender_id)
        if not candidates:
            raise ProactiveError(
                f"recipient {sender_id!r}: expected +<wa_id> (digits) or a business-scoped "
                "user id, as the bot's sender ids are"
            )
        known = self.gateway.store.latest_contact(candidates)
        if known is not None:
            contact_id = str(known["contact_id"])
            return Route(
                provider=str(known["provider"]),
                phone_number_id=known["phone_number_id"]
                or self.gateway.config.default_phone_number_id,
                recipient=_recipient(contact_id),
                contact_key=str(known["contact_key"]),
                contact_id=contact_id,
            )
        contact_id = candidates[0]
        phone_number_id = self.gateway.config.default_phone_number_id
        provider = self.default_provider
        return Route(
            provider=provider,
            phone_number_id=phone_number_id,
            recipient=_recipient(contact_id),
            contact_key=f"{provider}:{phone_number_id or ''}:{contact_id}",
            contact_id=contact_id,
        )

    def send(self, sender_id: str, responses: Sequence[Mapping[str, Any]]) -> list[SendResult]:
        """Render `responses` (Rasa-shaped) and send them to `sender_id`, in order.

        Raises ProactiveError when nothing could ever send them, SendError when the provider
        refused one (those before it were sent; those after it are not)."""
        route = self.route(sender_id)
        rendered = render(responses, self.gateway.config.render_options)
        for warning in rendered.warnings:
            logger.warning("proactive message to %s: %s", self._shown(route), warning)
        if not rendered.messages:
            return []
        sender = self.gateway.senders.get(route.provider)
        if sender is None:
            raise ProactiveError(f"no sender configured for provider {route.provider!r}")
        if not route.phone_number_id and route.provider != "serpro":
            raise ProactiveError("no phone number id to send from (WPP_PHONE_NUMBER_IDENTIFIER)")
        bodies = [
            JobRunner._request_body(route.provider, message, route.recipient)
            for message in rendered.messages
        ]
        ids = self.gateway.store.record_proactive(
            provider=route.provider,
            phone_number_id=route.phone_number_id,
            contact_key=route.contact_key,
            contact_id=route.contact_id,
            bodies=bodies,
            payload_refs=rendered.payload_refs,
        )
        results: list[SendResult] = []
        for outbound_id, message in zip(ids, rendered.messages, strict=True):
            try:
                result = sender.send(route.phone_number_id or "", message, route.recipient)
            except SendError as error:
                self.gateway.store.outbound_failed(outbound_id, str(error))
                logger.warning("proactive message to %s refused: %s", self._shown(route), error)
                raise
            self.gateway.store.proactive_accepted(
                outbound_id,
                wamid=result.message_id,
                request_id=result.request_id,
                status=result.status,
            )
            results.append(result)
        logger.info("sent %d proactive message(s) to %s", len(results), self._shown(route))
        return results

    def _shown(self, route: Route) -> str:
        return self.gateway.show_contact(route.contact_key or route.contact_id)


def _recipient(contact_id: str) -> Recipient:
    if contact_id.isascii() and contact_id.isdigit():
        return Recipient(wa_id=contact_id)
    return Recipient(user_id=contact_id)
