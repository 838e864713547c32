"""Rasa channels: WhatsApp inside a Rasa server, and Rasa behind the gateway.

**`WhatsAppInput`** (the Rasa channel shape of DESIGN §1). In `credentials.yml`::

    whatsapp_api_integration.integrations.rasa.WhatsAppInput:
      wpp_verify_token: ...
      wpp_app_secret: ...
      wpp_authorization_token: ...
      wpp_phone_number_identifier: ...

Any setting of DESIGN §3, in lower case; the environment (then `.env`, `variables.env`)
fills in what the block leaves out. It serves `GET|POST /webhooks/whatsapp/webhook` and the
health route `GET /webhooks/whatsapp/`. The webhook is the gateway's own (`web.intake.receive`:
handshake, signature, store before the 200), run in a thread so the database never blocks
Rasa's event loop. The gateway's worker threads then work the stored messages in this same
process, with Rasa itself as the backend: each message becomes a `UserMessage` handed to Rasa
on its event loop (`asyncio.run_coroutine_threadsafe`), the worker thread waits for Rasa's
answer, and the core renders it and the providers send it — so dedupe, per-contact order,
retries and dead letters are the gateway's. Threads start when Sanic has started serving
(`after_server_start`, in the serving process) and stop before it stops.

**`WhatsAppOutput`** is what Rasa sends through: it collects the answer to a message, and
sends on its own anything that comes later or outside an answer — reminders, external
events, `trigger_intent?output_channel=whatsapp` — through the same builders and providers
(`pipeline.proactive`).

**`GatewayRestInput`** (the gateway shape): Rasa's REST channel (same name `rest`, same URL,
same `{sender, message, metadata}` request, metadata kept), plus a way back: what Rasa sends
outside an answer is posted to the gateway's `POST /webhooks/whatsapp/proactive`
(`gateway_url`, `gateway_token` = the gateway's PROACTIVE_TOKEN). And where the stock channel
answers 200 with no messages when the bot fails (so the message is lost), it answers 500 and
the gateway retries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from whatsapp_api_integration.backends import BackendError
from whatsapp_api_integration.core.signature import handshake_challenge
from whatsapp_api_integration.logging_setup import RedactingFilter, Redactor
from whatsapp_api_integration.pipeline.proactive import ProactiveSender
from whatsapp_api_integration.settings import (
    DEFAULT_ENV_FILES,
    SETTING_NAMES,
    Settings,
    SettingsError,
    build_gateway,
    load_settings,
)
from whatsapp_api_integration.web.intake import Answer, receive, refuse_too_large

if TYPE_CHECKING:
    from whatsapp_api_integration.core.contract import IncomingMessage
    from whatsapp_api_integration.pipeline.gateway import Gateway

logger = logging.getLogger(__name__)

CHANNEL_NAME = "whatsapp"
OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
Deliver = Callable[[str, list[dict[str, Any]]], Awaitable[None]]


# ---- settings from credentials.yml --------------------------------------------------------


def _as_setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def channel_settings(
    credentials: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None = None,
    *,
    env_files: Iterable[str] = DEFAULT_ENV_FILES,
) -> Settings:
    """The settings of the channel: its credentials.yml block, the environment for the rest.

    Raises SettingsError naming every problem (an unknown key included: a typo would
    otherwise silently leave a secret unset)."""
    credentials = dict(credentials or {})
    unknown = sorted(key for key in credentials if str(key).upper() not in SETTING_NAMES)
    if unknown:
        raise SettingsError(
            [
                f"credentials.yml, {CHANNEL_NAME} channel: {key!r} is not a setting; use the "
                "names of the settings in lower case (wpp_verify_token, wpp_app_secret, ...)"
                for key in unknown
            ]
        )
    layered = dict(os.environ if environ is None else environ)
    for key, value in credentials.items():
        if value is not None:
            layered[str(key).upper()] = _as_setting(value)
    return load_settings(layered, env_files=env_files)


# ---- output channels ------------------------------------------------------------------------


class _DeferredOutput(CollectingOutputChannel):
    """Collects while an answer is being made; afterwards every message is delivered."""

    def __init__(self, deliver: Deliver | None, *, collecting: bool) -> None:
        super().__init__()
        self._deliver = deliver
        self._collecting = collecting

    def stop_collecting(self) -> None:
        self._collecting = False

    async def _persist_message(self, message: dict[str, Any]) -> None:
        if self._collecting:
            self.messages.append(message)
            return
        if self._deliver is None:
            raise RuntimeError(f"{self.name()}: no way to deliver a message sent on its own")
        await self._deliver(str(message.get("recipient_id", "")), [message])


class WhatsAppOutput(_DeferredOutput):
    """Rasa's messages to a WhatsApp contact, rendered by the core, sent by our providers."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME


class GatewayOutput(_DeferredOutput):
    """Rasa's messages sent outside an answer, posted back to the gateway."""

    @classmethod
    def name(cls) -> str:
        return "rest"


# ---- Rasa as the pipeline's backend -------------------------------------------------------


class RasaAgentBackend:
    """The pipeline's backend inside Rasa: hands each message to Rasa on its event loop.

    `answer` runs in a worker thread and blocks it (never the loop) until Rasa has handled
    the message or `timeout` passes. Until Sanic serves, and once it stops, messages wait
    (a retryable error) rather than being answered by no one.
    """

    def __init__(self, *, timeout: float, deliver: Deliver | None) -> None:
        self.timeout = timeout
        self.deliver = deliver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_new_message: OnNewMessage | None = None
        self._app: Any = None

    def bind(self, loop: asyncio.AbstractEventLoop, on_new_message: OnNewMessage, app: Any) -> None:
        self._loop, self._on_new_message, self._app = loop, on_new_message, app

    def unbind(self) -> None:
        self._loop = None

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        loop, on_new_message = self._loop, self._on_new_message
        if loop is None or on_new_message is None or loop.is_closed():
            raise BackendError("Rasa is not serving (starting or stopping)", retryable=True)
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        is_ready = getattr(agent, "is_ready", None)
        if callable(is_ready) and not is_ready():
            raise BackendError("Rasa has no model loaded yet", retryable=True)
        output = WhatsAppOutput(self.deliver, collecting=True)
        message = UserMessage(
            incoming.text,
            output,
            incoming.sender,
            input_channel=CHANNEL_NAME,
            message_id=incoming.metadata.get("message_id"),
            metadata=incoming.metadata,
        )
        future = asyncio.run_coroutine_threadsafe(_handle(on_new_message, message), loop)
        try:
            future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BackendError(
                f"Rasa did not answer within {self.timeout:g}s (RASA_TIMEOUT)", retryable=True
            ) from None
        except Exception as error:
            raise BackendError(
                f"Rasa raised {type(error).__name__}: {error}", retryable=True
            ) from error
        finally:
            output.stop_collecting()
        return list(output.messages)

    def close(self) -> None:
        self.unbind()


async def _handle(on_new_message: OnNewMessage, message: UserMessage) -> None:
    await on_new_message(message)


# ---- the WhatsApp channel ------------------------------------------------------------------

_VERIFY_TOKEN_IN_URL = re.compile(r"(hub\.verify_token=)[^&\s]*")


class _RedactVerifyToken(logging.Filter):
    """Sanic's access log writes the URL, and Meta's handshake carries the verify token."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, str) and "verify_token" in request:
            record.request = _VERIFY_TOKEN_IN_URL.sub(r"\1****", request)
        return True


def _protect_logs(settings: Settings) -> None:
    """Rasa owns logging in its process; keep our secrets out of it all the same.

    httpx logs each request's URL, and Rasa's API takes its token in the query string
    (`?token=`, failed deliveries); Sanic's access log has Meta's `hub.verify_token`."""
    redactor = Redactor(settings.secrets(), mask_contacts=settings.mask_contacts)
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactingFilter) for f in httpx_logger.filters):
        httpx_logger.addFilter(RedactingFilter(redactor))
    access = logging.getLogger("sanic.access")
    if not any(isinstance(f, _RedactVerifyToken) for f in access.filters):
        access.addFilter(_RedactVerifyToken())
    # Alembic narrates every migration check at INFO; only its warnings are news here.
    alembic = logging.getLogger("alembic")
    alembic.setLevel(max(alembic.getEffectiveLevel(), logging.WARNING))


class WhatsAppInput(InputChannel):
    """WhatsApp (Cloud API or SERPRO) as a Rasa input channel, on the gateway's pipeline."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls(channel_settings(credentials))

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else channel_settings(None)
        self.gateway: Gateway | None = None
        self.proactive: ProactiveSender | None = None
        self.backend = RasaAgentBackend(timeout=self.settings.rasa_timeout, deliver=self._deliver)
        self._lock = threading.Lock()
        _protect_logs(self.settings)
        for warning in self.settings.warnings:
            logger.warning(warning)
        if self.settings.workers == 0:
            logger.warning(
                "WORKERS=0: this Rasa server stores WhatsApp messages but never answers them; "
                "inside Rasa the workers must run in the Rasa process (WORKERS >= 1)"
            )

    def get_output_channel(self) -> OutputChannel | None:
        return WhatsAppOutput(self._deliver, collecting=False)

    # -- lifecycle --

    def start(
        self, loop: asyncio.AbstractEventLoop, on_new_message: OnNewMessage, app: Any
    ) -> None:
        """Bind Rasa, open the store and start the worker threads (blocking; not on the loop)."""
        with self._lock:
            self.backend.bind(loop, on_new_message, app)
            if self.gateway is None:
                self.gateway = build_gateway(self.settings, backend=self.backend)
            self.proactive = ProactiveSender(
                self.gateway, default_provider=self.settings.whatsapp_provider
            )
            notifier = self.gateway.on_failed_reply
            if notifier is not None and hasattr(notifier, "proactive"):
                notifier.proactive = self.proactive
            self.gateway.start()
            logger.info(
                "WhatsApp channel ready: mode %s, %d worker thread(s), store %s",
                self.settings.mode,
                self.settings.workers,
                self.settings.database_url.split(":", 1)[0],
            )

    def stop(self) -> None:
        with self._lock:
            gateway = self.gateway
            if gateway is None:
                return
            self.gateway = None
            gateway.stop()
            self.backend.unbind()
            gateway.close()

    async def _deliver(self, recipient_id: str, messages: list[dict[str, Any]]) -> None:
        proactive = self.proactive
        if proactive is None:
            raise RuntimeError("the WhatsApp channel has not started: message not sent")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, proactive.send, recipient_id, messages)

    # -- routes --

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        whatsapp = Blueprint("whatsapp_webhook", inspect.getmodule(self).__name__)  # type: ignore[union-attr]

        @whatsapp.listener("after_server_start")
        async def start_workers(app: Any, loop: asyncio.AbstractEventLoop) -> None:
            await loop.run_in_executor(None, self.start, loop, on_new_message, app)

        @whatsapp.listener("before_server_stop")
        async def stop_workers(app: Any, loop: asyncio.AbstractEventLoop) -> None:
            # In a thread: a worker may be waiting for Rasa, which needs this loop to finish.
            await loop.run_in_executor(None, self.stop)

        @whatsapp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            # 503 for the moment between Sanic listening and the store being open.
            if self.gateway is None:
                return response.text("starting", status=503)
            return response.text("ok")

        @whatsapp.route("/webhook", methods=["GET"])
        async def handshake(request: Request) -> HTTPResponse:
            params = {name: str(request.args.get(name)) for name in request.args}
            challenge = handshake_challenge(params, self.settings.wpp_verify_token)
            if challenge is None:
                logger.warning("webhook handshake refused (wrong or missing hub.verify_token)")
                return response.text("Forbidden", status=403)
            return response.text(challenge)

        @whatsapp.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            answer = await self.receive(request.body or b"", dict(request.headers.items()))
            return response.json(answer.body, status=answer.status)

        return whatsapp

    async def receive(self, body: bytes, headers: dict[str, str]) -> Answer:
        gateway = self.gateway
        if gateway is None:
            return Answer(503, {"error": "the WhatsApp channel is starting; retry later"})
        limit = self.settings.max_body_bytes
        loop = asyncio.get_running_loop()
        if len(body) > limit:
            return await loop.run_in_executor(None, refuse_too_large, headers, limit, gateway)
        return await loop.run_in_executor(None, receive, body, headers, self.settings, gateway)


# ---- the gateway's REST channel ------------------------------------------------------------


class GatewayRestInput(RestInput):
    """Rasa's REST channel for a bot behind the gateway, with a way back for what Rasa
    sends on its own. `credentials.yml`: replace `rest:` by

        whatsapp_api_integration.integrations.rasa.GatewayRestInput:
          gateway_url: http://localhost:5006      # or GATEWAY_URL
          gateway_token: <the gateway's PROACTIVE_TOKEN>   # or PROACTIVE_TOKEN
    """

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        unknown = sorted(set(credentials) - {"gateway_url", "gateway_token", "timeout"})
        if unknown:
            raise SettingsError(
                [
                    f"credentials.yml, rest channel: {key!r} is not a setting; expected "
                    "gateway_url, gateway_token, timeout"
                    for key in unknown
                ]
            )
        return cls(
            gateway_url=credentials.get("gateway_url") or os.environ.get("GATEWAY_URL"),
            gateway_token=credentials.get("gateway_token") or os.environ.get("PROACTIVE_TOKEN"),
            timeout=float(credentials.get("timeout") or 30.0),
        )

    def __init__(
        self,
        gateway_url: str | None = None,
        gateway_token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.gateway_token = gateway_token
        self.timeout = timeout
        if self.gateway_url and not self.gateway_token:
            logger.warning(
                "rest channel: gateway_url without gateway_token; the gateway refuses "
                "proactive messages without its PROACTIVE_TOKEN"
            )

    def get_output_channel(self) -> OutputChannel | None:
        if not self.gateway_url:
            return None
        return GatewayOutput(self._forward, collecting=False)

    async def _forward(self, recipient_id: str, messages: list[dict[str, Any]]) -> None:
        if not self.gateway_url:
            raise RuntimeError(
                "rest channel: a message sent outside an answer was dropped; set gateway_url"
            )
        headers = {"Authorization": f"Bearer {self.gateway_token}"} if self.gateway_token else {}
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            answer = await client.post(
                f"{self.gateway_url}/webhooks/whatsapp/proactive",
                json={"recipient_id": recipient_id, "messages": messages},
                headers=headers,
            )
        if answer.status_code != 200:
            raise RuntimeError(
                f"the gateway refused a proactive message for {recipient_id}: "
                f"{answer.status_code} {answer.text[:300]}"
            )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        rest = Blueprint(
            f"custom_webhook_{type(self).__name__}",
            inspect.getmodule(self).__name__,  # type: ignore[union-attr]
        )

        @rest.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @rest.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            try:
                document = request.json
            except Exception:
                document = None
            if not isinstance(document, dict):
                return response.json({"error": "$: expected a JSON object"}, status=400)
            sender, text = document.get("sender"), document.get("message")
            metadata = document.get("metadata")
            if not isinstance(sender, str) or not sender:
                return response.json({"error": "$.sender: expected a string"}, status=400)
            if text is not None and not isinstance(text, str):
                return response.json({"error": "$.message: expected a string"}, status=400)
            if metadata is not None and not isinstance(metadata, dict):
                return response.json({"error": "$.metadata: expected an object"}, status=400)
            output = GatewayOutput(self._forward if self.gateway_url else None, collecting=True)
            message_id = (metadata or {}).get("message_id")
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        output,
                        sender,
                        input_channel=self._extract_input_channel(request),
                        message_id=message_id if isinstance(message_id, str) else None,
                        metadata=metadata,
                    )
                )
            except Exception as error:
                logger.exception("rest channel: the bot failed on a message from %s", sender)
                # Not the stock 200 with no messages: the gateway retries a 500.
                return response.json(
                    {"error": f"the bot failed: {type(error).__name__}"}, status=500
                )
            finally:
                output.stop_collecting()
            return response.json(output.messages)

        return rest


__all__ = [
    "GatewayOutput",
    "GatewayRestInput",
    "RasaAgentBackend",
    "WhatsAppInput",
    "WhatsAppOutput",
    "channel_settings",
]
