"""The gateway: store what WhatsApp sends before acknowledging it, then answer it in workers.

`Gateway.accept` is what a webhook calls once the body is verified and parsed: one transaction
stores the body, one row per message (unique on provider and wamid, so a redelivery is a
duplicate) and the statuses; the host answers 200 after it returns. Workers claim each
contact's next message, and a `JobRunner` asks the backend and sends the replies: either
worker threads, one job each (`start()`, what a web process or Rasa hosts), or one event loop
with up to `workers` jobs in flight (`start(event_loop=True)`, the worker process), where a
slow bot costs an awaiting task per message instead of a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from whatsapp_api_integration.backends import Backend
from whatsapp_api_integration.core.contract import event_to_json, to_incoming
from whatsapp_api_integration.core.events import Event, Message, Status, Unknown, WebhookError
from whatsapp_api_integration.core.identity import contact_key
from whatsapp_api_integration.core.outbound import RenderOptions
from whatsapp_api_integration.pipeline import metrics
from whatsapp_api_integration.pipeline.lease import LeaseKeeper
from whatsapp_api_integration.pipeline.pacing import THROUGHPUT_REACHED, PacedSender, Pacer
from whatsapp_api_integration.pipeline.worker import JobRunner
from whatsapp_api_integration.providers import Sender
from whatsapp_api_integration.store import (
    DeadLetter,
    EventRecord,
    InboundRecord,
    Job,
    StatusRecord,
    Store,
)
from whatsapp_api_integration.store.listen import Listener

logger = logging.getLogger("whatsapp_api_integration.pipeline")


@dataclass(frozen=True)
class GatewayConfig:
    database_url: str = "sqlite:///whatsapp_gateway.db"
    store_flush: str = "webhooks"  # STORE_FLUSH: all, webhooks, none (store/engine.py)
    workers: int = 4  # threads in this process; 0 = none
    max_attempts: int = 8
    br_ninth_digit: bool = False
    render_options: RenderOptions = field(default_factory=RenderOptions)
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    lease_seconds: float = 120.0
    default_phone_number_id: str | None = None
    poll_interval_seconds: float = 0.5  # how often idle workers look for other processes' work
    mask_contacts: bool = False  # log contacts as 55619****4321 (MASK_CONTACTS)
    send_rate: float = 80.0  # messages a second per sending number, all processes (0 = off)
    send_burst: int = 80
    shutdown_grace_seconds: float = 10.0  # stop(): wait this long for jobs in hand
    pool_size: int | None = None  # database connections (None: the store's default)


@dataclass(frozen=True)
class AcceptResult:
    new_messages: int  # messages stored for the first time (the ignored ones included)
    duplicates: int  # messages already stored (a redelivery), not processed again
    statuses: int  # statuses stored for the first time
    ignored: int  # new messages stored but not for a backend (state `ignored`)


@dataclass(frozen=True)
class FailedReply:
    """WhatsApp reported one of our messages as failed (a new `failed` status)."""

    wamid: str
    provider: str
    phone_number_id: str | None
    contact_id: str | None  # the recipient's wa_id or BSUID, when the status names it
    errors: tuple[dict[str, Any], ...]  # code, title, message, details


def mask_contact(text: str) -> str:
    """`cloud_api:123:5561987654321` -> `cloud_api:123:55619****4321`."""
    prefix, colon, contact = text.rpartition(":")
    if len(contact) > 9:
        contact = contact[:5] + "*" * (len(contact) - 9) + contact[-4:]
    elif contact:
        contact = "*" * len(contact)
    return prefix + colon + contact


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        backend: Backend,
        senders: Mapping[str, Sender],
        *,
        store: Store | None = None,
    ) -> None:
        """Open the store (or use `store`, e.g. one a SandboxSender shares) and migrate it."""
        self.config = config
        self.backend = backend
        self.senders = dict(senders)
        self.store = (
            store
            if store is not None
            else Store(config.database_url, pool_size=config.pool_size, flush=config.store_flush)
        )
        self.store.migrate()
        self._wakeup = threading.Condition()
        self._generation = 0
        self._next_due: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The worker event loop's (loop, signal) while it runs: `wake` sets the signal.
        self._loop_signal: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self.leases = LeaseKeeper(self.store, config.lease_seconds)
        self.pacer = Pacer(self.store, rate=config.send_rate, burst=config.send_burst)
        self._halt = threading.Event()  # set when stopping jobs that could not finish in time
        # Told of each reply WhatsApp reports as failed (e.g. to tell the bot); must not block.
        self.on_failed_reply: Callable[[FailedReply], None] | None = None
        self._listener: Listener | None = None  # other processes' new work (store/listen.py)
        # What every send goes through, replies and proactive messages alike (pacing, halt).
        self.paced_senders = self._paced(self.senders)
        self._runner = JobRunner(
            store=self.store,
            backend=backend,
            senders=self.paced_senders,
            br_ninth_digit=config.br_ninth_digit,
            render_options=config.render_options,
            max_attempts=config.max_attempts,
            retry_base_seconds=config.retry_base_seconds,
            retry_max_seconds=config.retry_max_seconds,
            lease_seconds=config.lease_seconds,
            default_phone_number_id=config.default_phone_number_id,
            show_contact=self.show_contact,
            on_retry_scheduled=self._retry_scheduled,
        )
        gateway = weakref.ref(self)

        def queue_depth() -> float:
            current = gateway()
            try:
                return float(current.store.queue_depth()) if current is not None else 0.0
            except Exception:
                return float("nan")

        metrics.track_queue_depth(queue_depth)

    def _paced(self, senders: Mapping[str, Sender]) -> dict[str, Sender]:
        """Every send goes through `PacedSender` (pacing/pacing.py); a sandbox's is not paced."""
        from whatsapp_api_integration.providers.sandbox import SandboxSender

        return {
            name: PacedSender(
                sender, None if isinstance(sender, SandboxSender) else self.pacer, halt=self._halt
            )
            for name, sender in senders.items()
        }

    def show_contact(self, key: str) -> str:
        return mask_contact(key) if self.config.mask_contacts else key

    # ---- inbound --------------------------------------------------------------------------

    def accept(
        self,
        body: bytes,
        headers: Mapping[str, str],
        events: Sequence[Event],
        *,
        provider: str | None = None,
    ) -> AcceptResult:
        """Store `body` and its events in one transaction, committed when this returns."""
        messages: list[InboundRecord] = []
        statuses: list[StatusRecord] = []
        others: list[EventRecord] = []
        for event in events:
            if isinstance(event, Message):
                messages.append(self._inbound_record(event))
            elif isinstance(event, Status):
                statuses.append(
                    StatusRecord(
                        provider=event.provider,
                        wamid=event.id,
                        status=event.status,
                        timestamp=event.timestamp,
                        recipient_id=event.recipient_id or event.recipient_user_id,
                        errors=tuple(dataclasses.asdict(error) for error in event.errors),
                        request_id=event.request_id,
                    )
                )
            elif isinstance(event, (WebhookError, Unknown)):
                kind = "webhook_error" if isinstance(event, WebhookError) else "unknown"
                others.append(
                    EventRecord(kind, event.provider, event.phone_number_id, event_to_json(event))
                )
        provider = provider or (events[0].provider if events else None)
        counts = self.store.accept(
            body=body,
            headers=headers,
            provider=provider,
            messages=messages,
            statuses=statuses,
            events=others,
        )
        metrics.webhook_received(provider or "unknown").inc()
        if counts.duplicates:
            metrics.MESSAGES_DUPLICATE.inc(counts.duplicates)
        self._log_accepted(counts.body_id, events, counts.orphan_statuses, counts.duplicates)
        self._pause_throttled_numbers(events)
        if counts.new_messages > counts.ignored:
            self.wake()  # (the store told other processes, in the same commit)
        if counts.failed_replies and self.on_failed_reply is not None:
            self._report_failed_replies(counts.failed_replies, events)
        return AcceptResult(
            new_messages=counts.new_messages,
            duplicates=counts.duplicates,
            statuses=counts.statuses,
            ignored=counts.ignored,
        )

    def _announce_work(self) -> None:
        """Wake the worker processes listening on PostgreSQL (store/listen.py)."""
        try:
            self.store.announce_work()
        except Exception as error:  # stored already; workers poll and will find it
            logger.warning("could not notify worker processes of new work: %s", error)

    def _pause_throttled_numbers(self, events: Sequence[Event]) -> None:
        """Meta may report 130429 (throughput reached) in a webhook's `value.errors` too:
        every process then pauses its sends from that number (pipeline/pacing.py)."""
        for event in events:
            if not isinstance(event, WebhookError) or not event.phone_number_id:
                continue
            if any(error.code == THROUGHPUT_REACHED for error in event.errors):
                key = f"{event.provider}:{event.phone_number_id}"
                try:
                    self.pacer.pause(key, 1.0)
                except Exception as error:  # the body is stored; pacing is best effort
                    logger.warning("could not pause sends from %s: %s", key, error)

    def _inbound_record(self, message: Message) -> InboundRecord:
        # Resolving payload references waits for the worker: here only whether the message
        # is for a backend at all, and the text it will be sent, matter.
        incoming = to_incoming(message, br_ninth_digit=self.config.br_ninth_digit)
        return InboundRecord(
            provider=message.provider,
            wamid=message.id,
            phone_number_id=message.phone_number_id,
            contact_key=contact_key(message),
            contact_id=message.contact_id,
            message_type=message.type,
            text=incoming.text if incoming is not None else None,
            timestamp=message.timestamp,
        )

    def _report_failed_replies(
        self, failed: Sequence[tuple[str, str | None]], events: Sequence[Event]
    ) -> None:
        assert self.on_failed_reply is not None
        by_wamid = {e.id: e for e in events if isinstance(e, Status) and e.status == "failed"}
        for wamid, contact_id in failed:
            status = by_wamid.get(wamid)
            if status is None:
                continue
            report = FailedReply(
                wamid=wamid,
                provider=status.provider,
                phone_number_id=status.phone_number_id,
                contact_id=contact_id,
                errors=tuple(dataclasses.asdict(error) for error in status.errors),
            )
            try:
                self.on_failed_reply(report)
            except Exception:  # telling the bot is a courtesy; the status is stored already
                logger.exception("could not report failed message %s", wamid)

    def _log_accepted(
        self, body_id: int, events: Sequence[Event], orphans: Sequence[str], duplicates: int
    ) -> None:
        if duplicates:
            logger.info(
                "body %d: %d message(s) already stored, not processed again", body_id, duplicates
            )
        for wamid in orphans:
            logger.info(
                "body %d: status for wamid %s, which we never sent: kept as orphan", body_id, wamid
            )
        for event in events:
            if isinstance(event, Status) and event.status == "failed":
                codes = ", ".join(str(error.code) for error in event.errors) or "none"
                logger.warning(
                    "body %d: WhatsApp reports our message %s failed (codes %s)",
                    body_id,
                    event.id,
                    codes,
                )
            elif isinstance(event, Unknown):
                logger.warning(
                    "body %d: not answered: %s (wamid %s)", body_id, event.reason, event.message_id
                )
            elif isinstance(event, WebhookError):
                codes = ", ".join(str(error.code) for error in event.errors)
                logger.warning(
                    "body %d: webhook error(s) for number %s: codes %s",
                    body_id,
                    event.phone_number_id,
                    codes,
                )

    def reject(
        self, body: bytes, headers: Mapping[str, str], reason: str, http_status: int
    ) -> None:
        """Keep a bounded record of a refused body (64 KiB of it, its length and sha256)."""
        body_id = self.store.reject(
            body=body, headers=headers, reason=reason, http_status=http_status
        )
        logger.info("body %d rejected with %d: %s", body_id, http_status, reason)

    # ---- workers --------------------------------------------------------------------------

    def wake(self) -> None:
        """New work: wake one idle thread. A thread that claims a job wakes the next one
        (`_claimed`), so a burst spreads over as many threads as it has jobs, while a
        single message does not send every idle thread to the database for nothing."""
        with self._wakeup:
            self._generation += 1
            self._wakeup.notify()
        self._signal_loop()

    def _signal_loop(self) -> None:
        signal = self._loop_signal
        if signal is not None:
            loop, event = signal
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def _claimed(self) -> None:
        with self._wakeup:
            self._wakeup.notify()

    def _retry_scheduled(self, due: float) -> None:
        with self._wakeup:
            if self._next_due is None or due < self._next_due:
                self._next_due = due
            self._wakeup.notify()  # one thread recomputes its timeout; it chains the rest

    def _idle(self, seen: int, stop_event: threading.Event) -> None:
        with self._wakeup:
            if self._generation != seen or stop_event.is_set():
                return
            self._wakeup.wait(self._idle_timeout())

    def _idle_timeout(self) -> float:
        """How long a worker with nothing to do waits before looking again: the poll
        interval, or less when a retry falls due sooner (call with `_wakeup` held)."""
        timeout = self.config.poll_interval_seconds
        if self._next_due is not None:
            until_due = self._next_due - time.time()
            if until_due <= 0:
                self._next_due = None
            timeout = max(0.0, min(timeout, until_due))
        return timeout

    def _owner(self) -> str:
        thread = threading.current_thread().name
        return f"{socket.gethostname()}:{os.getpid()}:{thread}:{uuid.uuid4().hex[:8]}"

    def run_worker(self, stop_event: threading.Event) -> None:
        """Claim and work jobs until `stop_event` is set (the `worker` command's loop)."""
        owner = self._owner()
        while not stop_event.is_set():
            seen = self._generation
            try:
                job = self.store.claim(owner, self.config.lease_seconds)
            except Exception:
                logger.exception("claiming a job failed; trying again shortly")
                stop_event.wait(self.config.poll_interval_seconds)
                continue
            if job is None:
                self._idle(seen, stop_event)
                continue
            self._claimed()
            try:
                with self.leases.holding(job):
                    self._runner.work(job)
            except Exception:  # the store failed while recording an outcome: keep the thread
                logger.exception("job %s (wamid %s): outcome not recorded", job.id, job.wamid)
                stop_event.wait(self.config.poll_interval_seconds)

    async def run_event_loop_worker(self, stop_event: threading.Event, in_flight: int) -> None:
        """Claim jobs and work up to `in_flight` of them at once on this event loop, until
        `stop_event` is set; then let those in hand finish until they do or `abandon()`
        gives them back. Store calls are brief and run on the loop; a backend without
        `answer_async` and the sends (paced, blocking) run on a pool of threads."""
        loop = asyncio.get_running_loop()
        signal = asyncio.Event()
        self._loop_signal = (loop, signal)
        tasks: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            signal.set()  # a free slot, and maybe the contact's next message is claimable

        executor = ThreadPoolExecutor(
            max_workers=min(in_flight, 64), thread_name_prefix="whatsapp-worker"
        )
        try:
            while not stop_event.is_set():
                signal.clear()
                timeout: float | None = None
                while len(tasks) < in_flight and not stop_event.is_set():
                    try:
                        job = self.store.claim(self._owner(), self.config.lease_seconds)
                    except Exception:
                        logger.exception("claiming a job failed; trying again shortly")
                        timeout = self.config.poll_interval_seconds
                        break
                    if job is None:
                        with self._wakeup:
                            timeout = self._idle_timeout()
                        break
                    task = loop.create_task(self._work_on_loop(job, executor))
                    tasks.add(task)
                    task.add_done_callback(finished)
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(signal.wait(), timeout)
            while tasks and not self._halt.is_set():  # stopping: the jobs in hand finish
                signal.clear()
                await signal.wait()
            # Given back by `abandon()`: another worker redoes them. A send under way ends
            # and its reply's id is recorded (the halt refuses the next send); the others,
            # waiting for the bot or their turn, stop now.
            for task in list(tasks):
                if task not in self._runner.sending:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if self._loop_signal == (loop, signal):  # not a newer loop's (a quick restart)
                self._loop_signal = None
            executor.shutdown(wait=False, cancel_futures=True)
            for resource in (self.backend, *self.senders.values()):
                aclose = getattr(resource, "aclose", None)
                if aclose is not None:  # their loop-bound sessions close on this loop
                    with contextlib.suppress(Exception):
                        await aclose()

    async def _work_on_loop(self, job: Job, executor: ThreadPoolExecutor) -> None:
        try:
            with self.leases.holding(job):
                await self._runner.work_async(job, executor)
        except Exception:  # the store failed while recording an outcome
            logger.exception("job %s (wamid %s): outcome not recorded", job.id, job.wamid)

    def start(self, *, event_loop: bool = False) -> None:
        """Start `workers` worker threads, or with `event_loop` one thread running an event
        loop that works up to `workers` jobs at once (`run_event_loop_worker`)."""
        if self._threads:
            return
        self._stop.clear()
        self._halt.clear()
        if self.config.workers > 0 and self._listener is None:
            self._listener = self.store.job_listener(
                self.wake, interval=min(0.01, self.config.poll_interval_seconds)
            )
            if self._listener is not None:
                self._listener.start()
        if event_loop and self.config.workers > 0:
            in_flight = self.config.workers

            def run_loop() -> None:
                try:
                    asyncio.run(self.run_event_loop_worker(self._stop, in_flight))
                except Exception:  # a bug: say so, and let `working()` tell the process
                    logger.exception("the worker's event loop stopped")

            thread = threading.Thread(target=run_loop, name="whatsapp-worker-loop", daemon=True)
            thread.start()
            self._threads.append(thread)
            return
        for number in range(self.config.workers):
            thread = threading.Thread(
                target=self.run_worker,
                args=(self._stop,),
                name=f"whatsapp-worker-{number}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def working(self) -> bool:
        """Whether every worker thread (or the event loop's) started is still running."""
        return all(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float | None = None) -> None:
        """Claim no more jobs and let the jobs in hand finish, for up to `timeout` seconds
        (default: `shutdown_grace_seconds`). Jobs still running then are released: back in
        the queue at once for another worker, and this process's threads send nothing more."""
        timeout = self.config.shutdown_grace_seconds if timeout is None else timeout
        self._stop.set()
        with self._wakeup:
            self._wakeup.notify_all()
        self._signal_loop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [thread.name for thread in self._threads if thread.is_alive()]
        if late:
            released = self.abandon()
            logger.warning(
                "%s still working after %.1fs: %d job(s) released for another worker",
                ", ".join(late),
                timeout,
                released,
            )
        self.leases.stop()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._threads = []

    def abandon(self) -> int:
        """Give every job in hand back to the queue now and start no further send (a stop
        that cannot wait); how many jobs were released."""
        self._stop.set()
        self._halt.set()
        released = self.leases.release_all()
        self._signal_loop()
        return released

    def close(self) -> None:
        """Stop the workers, close the senders and the backend, release the database."""
        self.stop()
        for resource in (*self.senders.values(), self.backend, self.on_failed_reply):
            close = getattr(resource, "close", None)
            if callable(close):
                close()
        self.store.close()

    def process_available(self, limit: int | None = None) -> int:
        """Work jobs in this thread until none is available now; how many were worked."""
        owner = self._owner()
        worked = 0
        while limit is None or worked < limit:
            job = self.store.claim(owner, self.config.lease_seconds)
            if job is None:
                break
            with self.leases.holding(job):
                self._runner.work(job)
            worked += 1
        return worked

    # ---- operator views -------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        return self.store.ready()

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def dead_letters(self) -> list[DeadLetter]:
        return self.store.dead_letters()

    def dead_letter(self, id: int) -> DeadLetter | None:
        return self.store.dead_letter_by_id(id)

    def replay(self, id: int) -> bool:
        replayed = self.store.replay(id)
        if replayed:
            logger.info("dead letter %d replayed", id)
            self.wake()
            self._announce_work()
        return replayed

    def conversation(self, contact: str, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.conversation(contact, limit)
