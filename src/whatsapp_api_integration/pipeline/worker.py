"""Working one claimed job: ask the backend once, render, send each reply once, in order.

What makes a retry safe:
- the backend's responses are stored on the job as soon as they arrive, so a retried job
  renders them again (rendering is pure) and never asks the backend twice;
- every reply is recorded (its request body and its place in the job) before any is sent,
  and marked accepted with its wamid right after its send, so a retry skips replies already
  accepted and sends the others in their order.

The job is written once, as a generator (`_steps`) that yields its two kinds of waiting, asking
the backend (`_Ask`) and sending a reply (`_Send`), and gets their answers back: a thread
drives it with blocking calls (`work`), an event loop with awaits (`work_async`), so one worker
process holds hundreds of slow backend calls in flight without a thread for each.

The one window no design closes (DESIGN.md §10): the process dies after the provider accepted
a reply and before `Store.reply_accepted` committed its wamid. The reply then stays `pending` and
is sent again when the job is retried, so the contact may see it twice. The window is one
database write long.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from whatsapp_api_integration.backends import Backend, BackendError
from whatsapp_api_integration.core.contract import IncomingMessage, to_incoming
from whatsapp_api_integration.core.events import Message, Provider, Recipient
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.core.outbound import (
    OutgoingMessage,
    RenderOptions,
    RenderResult,
    UnsupportedMessageError,
    is_payload_ref,
    render,
    to_cloud_api,
    to_serpro,
)
from whatsapp_api_integration.pipeline import metrics
from whatsapp_api_integration.pipeline.retry import backoff_delay
from whatsapp_api_integration.providers import Sender, SendError
from whatsapp_api_integration.store import Job, OutboundRecord, Store

logger = logging.getLogger("whatsapp_api_integration.pipeline")


class _FinalError(Exception):
    """A failure no retry can fix (a missing sender, a reply the provider cannot express)."""


@dataclass(frozen=True)
class _Ask:
    """Step: ask the backend; answered with its responses."""

    incoming: IncomingMessage


@dataclass(frozen=True)
class _Send:
    """Step: send one reply; answered with the provider's `SendResult`."""

    sender: Sender
    phone_number_id: str
    message: OutgoingMessage
    recipient: Recipient


_Step = _Ask | _Send
_Steps = Generator[_Step, Any, None]


def _advance(steps: _Steps, answer: Any = None, failure: Exception | None = None) -> _Step | None:
    """The job's next step, given the last one's answer or failure; None when it is done."""
    try:
        return steps.send(answer) if failure is None else steps.throw(failure)
    except StopIteration:
        return None


class JobRunner:
    def __init__(
        self,
        *,
        store: Store,
        backend: Backend,
        senders: Mapping[str, Sender],
        br_ninth_digit: bool,
        render_options: RenderOptions,
        max_attempts: int,
        retry_base_seconds: float,
        retry_max_seconds: float,
        lease_seconds: float,
        default_phone_number_id: str | None,
        show_contact: Callable[[str], str],
        on_retry_scheduled: Callable[[float], None],
    ) -> None:
        self.store = store
        self.backend = backend
        self.senders = senders
        self.br_ninth_digit = br_ninth_digit
        self.render_options = render_options
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.lease_seconds = lease_seconds
        self.default_phone_number_id = default_phone_number_id
        self.show_contact = show_contact
        self.on_retry_scheduled = on_retry_scheduled
        self._messages_of_body = functools.lru_cache(maxsize=16)(self._parse_body)
        # Event-loop tasks in the middle of a send: a stop that cannot wait lets these finish
        # (and record the reply's id) rather than cancel a POST Meta may have accepted.
        self.sending: set[asyncio.Task[Any]] = set()

    # ---- the job --------------------------------------------------------------------------

    def work(self, job: Job) -> None:
        """Work `job` to one outcome: answered, ignored, retry scheduled or dead letter."""
        if self._gave_up(job):
            return
        try:
            steps = self._steps(job)
            step = _advance(steps)
            while step is not None:
                try:
                    answer = self._perform(step)
                except Exception as error:  # handed to the job, which decides
                    step = _advance(steps, failure=error)
                else:
                    step = _advance(steps, answer)
        except Exception as error:
            self._settle(job, error)

    async def work_async(self, job: Job, executor: Executor) -> None:
        """`work` on an event loop: a backend with `answer_async` is awaited; a blocking
        backend and the (paced, blocking) sends run on `executor`'s threads."""
        if self._gave_up(job):
            return
        try:
            steps = self._steps(job)
            step = _advance(steps)
            while step is not None:
                try:
                    answer = await self._perform_async(step, executor)
                except Exception as error:
                    step = _advance(steps, failure=error)
                else:
                    step = _advance(steps, answer)
        except Exception as error:
            self._settle(job, error)

    def _perform(self, step: _Step) -> Any:
        if isinstance(step, _Ask):
            return self.backend.answer(step.incoming)
        return step.sender.send(step.phone_number_id, step.message, step.recipient)

    async def _perform_async(self, step: _Step, executor: Executor) -> Any:
        loop = asyncio.get_running_loop()
        if isinstance(step, _Ask):
            answer_async = getattr(self.backend, "answer_async", None)
            if answer_async is not None:
                return await answer_async(step.incoming)
            return await loop.run_in_executor(executor, self.backend.answer, step.incoming)
        task = asyncio.current_task()
        if task is not None:
            self.sending.add(task)
        try:
            send_async = getattr(step.sender, "send_async", None)  # a PacedSender has it
            if send_async is not None:
                return await send_async(
                    step.phone_number_id, step.message, step.recipient, executor
                )
            send = functools.partial(
                step.sender.send, step.phone_number_id, step.message, step.recipient
            )
            return await loop.run_in_executor(executor, send)
        finally:
            if task is not None:
                self.sending.discard(task)

    def _gave_up(self, job: Job) -> bool:
        if job.attempts > self.max_attempts:
            # Only a job whose worker kept dying (lease expired) gets here.
            self._dead(job, f"gave up after {job.attempts - 1} attempts", retryable=True)
            return True
        return False

    def _settle(self, job: Job, error: Exception) -> None:
        """The outcome of a job that failed with `error`: a retry later or a dead letter."""
        if isinstance(error, BackendError):
            self._failed(job, f"backend: {error}", retryable=error.retryable)
        elif isinstance(error, SendError):
            self._failed(
                job,
                f"send: {error}",
                retryable=error.retryable,
                retry_after=error.retry_after,
                send=True,
            )
        elif isinstance(error, (_FinalError, UnsupportedMessageError)):
            self._failed(job, str(error), retryable=False)
        else:  # a bug or an outage we did not foresee: retry, then give up
            logger.error("job %s (wamid %s) failed unexpectedly", job.id, job.wamid, exc_info=error)
            self._failed(job, f"{type(error).__name__}: {error}", retryable=True)

    def _steps(self, job: Job) -> _Steps:
        message = self._message(job)
        responses = job.responses
        asked = responses is None
        if responses is None:
            incoming = to_incoming(
                message, br_ninth_digit=self.br_ninth_digit, resolve_payload=self._resolve_payload
            )
            if incoming is None:
                self.store.finish(job, "ignored")
                logger.info("wamid %s (%s): not for a backend", job.wamid, message.type)
                return
            started = time.monotonic()
            responses = yield _Ask(incoming)
            metrics.BACKEND_LATENCY.observe(time.monotonic() - started)
        rendered = render(responses, self.render_options)
        for warning in rendered.warnings:
            logger.warning("job %s (wamid %s): %s", job.id, job.wamid, warning)
        try:
            sender, phone_number_id, recipient = self._route(job, message, rendered.messages)
            bodies = [self._request_body(job.provider, r, recipient) for r in rendered.messages]
        except (_FinalError, UnsupportedMessageError):
            if asked:  # a replay after the fix must not ask the backend again
                self.store.save_responses(job, responses)
            raise
        replies = self.store.plan_replies(
            job,
            responses=responses if asked else None,
            bodies=bodies,
            payload_refs=rendered.payload_refs,
            phone_number_id=phone_number_id,
            lease_seconds=self.lease_seconds,
        )
        if replies is None:
            self._lost(job)
            return
        pending = [reply for reply in replies if reply.state != "accepted"]
        if not pending and not self.store.finish(job, "answered"):
            self._lost(job)
            return
        for reply in pending:
            assert sender is not None
            assert phone_number_id is not None
            last = reply is pending[-1]
            ours = yield from self._send(
                job, sender, phone_number_id, recipient, rendered, reply, last
            )
            if not ours:
                self._lost(job)
                return
        metrics.MESSAGES_PROCESSED.inc()
        logger.info(
            "answered wamid %s from %s with %d replies (attempt %d)",
            job.wamid,
            self.show_contact(job.contact_key),
            len(replies),
            job.attempts,
        )

    def _route(
        self, job: Job, message: Message, replies: tuple[OutgoingMessage, ...]
    ) -> tuple[Sender | None, str | None, Recipient]:
        """Who sends the replies, from which number, to whom (DESIGN.md §6)."""
        recipient = Recipient.of(message)
        if not replies:
            return None, None, recipient
        sender = self.senders.get(job.provider)
        if sender is None:
            raise _FinalError(f"no sender configured for provider {job.provider!r}")
        phone_number_id = (
            job.phone_number_id
            or self.default_phone_number_id
            # SERPRO's client knows its number (SERPRO_PHONE_NUMBER_ID) when the body did not.
            or getattr(sender, "phone_number_id", None)
        )
        if not phone_number_id:
            raise _FinalError("no phone number id to send from (WPP_PHONE_NUMBER_IDENTIFIER)")
        return sender, phone_number_id, recipient

    def _send(
        self,
        job: Job,
        sender: Sender,
        phone_number_id: str,
        recipient: Recipient,
        rendered: RenderResult,
        reply: OutboundRecord,
        last: bool,
    ) -> Generator[_Step, Any, bool]:
        """Send one recorded reply and record its id; False if the job was taken from us."""
        started = time.monotonic()
        try:
            result = yield _Send(sender, phone_number_id, rendered.messages[reply.seq], recipient)
        except SendError as error:
            self.store.outbound_failed(reply.id, str(error))
            raise
        finally:
            metrics.SEND_LATENCY.observe(time.monotonic() - started)
        # The window of the module docstring is between these two lines.
        ours = self.store.reply_accepted(
            job,
            reply.id,
            wamid=result.message_id,
            request_id=result.request_id,
            status=result.status,
            lease_seconds=self.lease_seconds,
            last=last,
        )
        logger.info(
            "sent reply %d/%d %s to %s (in reply to %s)",
            reply.seq + 1,
            len(rendered.messages),
            # SERPRO answers with its request id; the wamid comes later, with a status.
            f"wamid {result.message_id}" if result.message_id else f"request {result.request_id}",
            self.show_contact(job.contact_key),
            job.wamid,
        )
        return ours

    # ---- outcomes -------------------------------------------------------------------------

    def _failed(
        self,
        job: Job,
        error: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        send: bool = False,
    ) -> None:
        metrics.MESSAGES_FAILED.inc()
        if not retryable or job.attempts >= self.max_attempts:
            self._dead(job, error, retryable=retryable)
            return
        delay = backoff_delay(
            job.attempts,
            base=self.retry_base_seconds,
            maximum=self.retry_max_seconds,
            retry_after=retry_after,
        )
        if not self.store.retry_later(job, delay, error):
            self._lost(job)
            return
        if send:
            metrics.SENDS_RETRIED.inc()
        self.on_retry_scheduled(time.time() + delay)
        logger.warning(
            "wamid %s from %s: attempt %d/%d failed, retry in %.2fs: %s",
            job.wamid,
            self.show_contact(job.contact_key),
            job.attempts,
            self.max_attempts,
            delay,
            error,
        )

    def _dead(self, job: Job, error: str, *, retryable: bool) -> None:
        letter = self.store.dead_letter(job, error, retryable=retryable)
        if letter is None:
            self._lost(job)
            return
        metrics.DEAD_LETTERS.inc()
        logger.error(
            "wamid %s from %s: dead letter %d after %d attempt(s): %s",
            job.wamid,
            self.show_contact(job.contact_key),
            letter,
            job.attempts,
            error,
        )

    def _lost(self, job: Job) -> None:
        logger.warning(
            "job %s (wamid %s): lease lost to another worker; leaving it to that worker",
            job.id,
            job.wamid,
        )

    # ---- helpers --------------------------------------------------------------------------

    def _resolve_payload(self, choice_id: str) -> str | None:
        return self.store.resolve_payload(choice_id) if is_payload_ref(choice_id) else None

    def _parse_body(
        self, body_id: int, provider: Provider, body: bytes | None
    ) -> dict[str, Message]:
        events = parse_webhook(body if body is not None else self.store.body(body_id), provider)
        return {event.id: event for event in events if isinstance(event, Message)}

    def _message(self, job: Job) -> Message:
        provider: Provider = "serpro" if job.provider == "serpro" else "cloud_api"
        message = self._messages_of_body(job.body_id, provider, job.body).get(job.wamid)
        if message is None:
            raise _FinalError(f"message {job.wamid} not found in its stored body {job.body_id}")
        return message

    @staticmethod
    def _request_body(provider: str, reply: OutgoingMessage, recipient: Recipient) -> Any:
        if provider == "serpro":
            request = to_serpro(reply, recipient)
            return {"path": request.path, "body": request.body}
        return to_cloud_api(reply, recipient)
