"""Failed deliveries reach the bot (RASA_FAILED_DELIVERY_INTENT; off when unset).

When WhatsApp reports one of our messages as failed (131047: outside the 24-hour window,
131026: undeliverable, ...), Rasa is told through its HTTP API:

    POST {RASA_URL}/conversations/{sender id}/trigger_intent
    {"name": <intent>, "entities": {"whatsapp_error_code": 131047,
     "whatsapp_error_title": ..., "whatsapp_error_message": ...,
     "whatsapp_failed_message_id": <wamid>}}

(Rasa must run with `--enable-api`; `RASA_API_TOKEN` is sent as `?token=` when Rasa runs
with `--auth-token`.) No `output_channel` is named, so Rasa returns what the bot answers in
`messages`; those are sent to the contact as proactive messages (a template, say, which
WhatsApp delivers outside the 24-hour window). One background thread does the calls, so the
webhook that carried the status is never slowed; a call that fails is logged, not retried.
"""

from __future__ import annotations

import logging
import queue
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any

import httpx

from whatsapp_api_integration.core.identity import add_br_ninth_digit

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import FailedReply
    from whatsapp_api_integration.pipeline.proactive import ProactiveSender

logger = logging.getLogger(__name__)

_STOP = object()


def sender_id_of(contact_id: str, *, br_ninth_digit: bool) -> str:
    """The backend sender id (DESIGN §6) of a contact id (wa_id or BSUID)."""
    if contact_id.isascii() and contact_id.isdigit():
        return "+" + (add_br_ninth_digit(contact_id) if br_ninth_digit else contact_id)
    return contact_id


def failure_entities(failure: FailedReply) -> dict[str, Any]:
    first = failure.errors[0] if failure.errors else {}
    entities: dict[str, Any] = {"whatsapp_failed_message_id": failure.wamid}
    for key in ("code", "title", "message"):
        if first.get(key) is not None:
            entities[f"whatsapp_error_{key}"] = first[key]
    return entities


class RasaFailedDeliveryNotifier:
    """A `Gateway.on_failed_reply` hook that triggers `intent` in Rasa's conversation."""

    def __init__(
        self,
        rasa_url: str,
        intent: str,
        *,
        proactive: ProactiveSender | None,
        api_token: str | None = None,
        br_ninth_digit: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.rasa_url = rasa_url.rstrip("/")
        self.intent = intent
        self.proactive = proactive
        self.api_token = api_token
        self.br_ninth_digit = br_ninth_digit
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="whatsapp-failed-delivery", daemon=True
        )
        self._thread.start()

    def __call__(self, failure: FailedReply) -> None:
        self._queue.put(failure)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._client.close()

    def join(self) -> None:
        """Wait until every failure reported so far was handled (tests, shutdown)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self.notify(item)
            except Exception:
                logger.exception("telling Rasa about failed message %s failed", item.wamid)
            finally:
                self._queue.task_done()

    def notify(self, failure: FailedReply) -> None:
        if not failure.contact_id:
            logger.warning(
                "failed message %s: the status names no recipient; Rasa not told", failure.wamid
            )
            return
        sender_id = sender_id_of(failure.contact_id, br_ninth_digit=self.br_ninth_digit)
        url = (
            f"{self.rasa_url}/conversations/{urllib.parse.quote(sender_id, safe='')}/trigger_intent"
        )
        params = {"token": self.api_token} if self.api_token else None
        entities = failure_entities(failure)
        try:
            response = self._client.post(
                url, params=params, json={"name": self.intent, "entities": entities}
            )
        except httpx.HTTPError as error:
            logger.warning(
                "failed message %s: Rasa not told (%s: %s)",
                failure.wamid,
                type(error).__name__,
                error,
            )
            return
        if response.status_code != 200:
            hint = {
                401: " (set RASA_API_TOKEN to Rasa's --auth-token)",
                403: " (set RASA_API_TOKEN to Rasa's --auth-token)",
                404: f" (is {self.intent!r} an intent of the domain? is --enable-api on?)",
            }.get(response.status_code, "")
            logger.warning(
                "failed message %s: Rasa answered %d to trigger_intent%s: %s",
                failure.wamid,
                response.status_code,
                hint,
                response.text[:300],
            )
            return
        logger.info(
            "failed message %s (code %s): intent %s triggered for the bot",
            failure.wamid,
            entities.get("whatsapp_error_code"),
            self.intent,
        )
        try:
            messages = response.json().get("messages") or []
        except (ValueError, AttributeError):
            messages = []
        if messages and self.proactive is not None:
            self.proactive.send(sender_id, [m for m in messages if isinstance(m, dict)])
