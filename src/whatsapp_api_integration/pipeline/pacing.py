"""Outbound pacing: how fast each sending number may send, shared by every process.

Meta caps the messages one business number sends (80 a second by default, error 130429 past
it) and the messages one number sends to one contact (about one every 6 seconds, error
131056). A campaign answered by several worker processes on several machines must stay under
the first cap together, so the pace is kept in the database: a token bucket per sending
number (`SEND_RATE` tokens a second, up to `SEND_BURST`), see `store/buckets.py`.

`PacedSender` wraps a provider's sender, so pacing happens in one place of the send path, just
before each request, and a contact's replies keep their order (one thread sends them one after
another; pacing only delays each).

Cost: a process takes tokens in batches (up to `SEND_RATE × 0.25 s`, at most `SEND_BURST`)
and spends them from memory, so at 80/s a process makes about 4 database round trips a second
for pacing, at 1,000/s about 13 (burst 80); `SEND_RATE=0` turns pacing off and costs nothing.
Tokens a process took but did not use within `hold_seconds` are dropped: that bounds what a
process can save up and spend late to one batch, so in any window of T seconds the number
sends at most `SEND_BURST + SEND_RATE × T` plus one batch per process.

Meta's throttling answers:
- 130429 (the number's throughput reached): the bucket is emptied for everyone for the
  provider's `Retry-After`, else 1 s doubling while 130429 repeats (at most 60 s); the job
  is retried after at least that long.
- 131056 (pair rate: this contact): only that contact waits. Meta asks to retry after 4^X
  seconds (X = 0, 1, 2 … for each repeat), so the job's retry comes no sooner than that;
  other contacts of the same number are not slowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from whatsapp_api_integration.pipeline import metrics
from whatsapp_api_integration.providers import SendError, SendResult

if TYPE_CHECKING:
    from whatsapp_api_integration.core.events import Provider, Recipient
    from whatsapp_api_integration.core.outbound import OutgoingMessage
    from whatsapp_api_integration.providers import Sender
    from whatsapp_api_integration.store.buckets import Grant

logger = logging.getLogger("whatsapp_api_integration.pipeline")

THROUGHPUT_REACHED = 130429
PAIR_RATE_LIMIT = 131056
# A streak of throttling answers older than this is forgotten.
_STREAK_MEMORY_SECONDS = 600.0


class SendBuckets(Protocol):
    """What pacing needs from the store."""

    def take_send_tokens(self, key: str, wanted: int, *, rate: float, burst: float) -> Grant: ...

    def pause_sends(self, key: str, seconds: float, *, rate: float, burst: float) -> None: ...


@dataclass
class _Stash:
    tokens: int
    usable_until: float


class Pacer:
    """Hands out permission to send from a number, at `rate` a second with bursts of `burst`,
    taking tokens from the shared buckets in batches."""

    def __init__(
        self,
        buckets: SendBuckets,
        *,
        rate: float,
        burst: int,
        hold_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.buckets = buckets
        self.rate = rate
        self.burst = max(1, burst)
        self.hold_seconds = hold_seconds
        self.batch = max(1, min(self.burst, int(rate * hold_seconds)))
        self._clock = clock
        self._sleep = sleep
        self._stash: dict[str, _Stash] = {}
        self._refilling: set[str] = set()
        self._refilled_async: dict[tuple[int, str], asyncio.Event] = {}
        self._lock = threading.Lock()
        self._refilled = threading.Condition()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float:
        """Block until one message may be sent from `key`; the seconds waited."""
        if not self.enabled:
            return 0.0
        while True:
            turn = self._turn(key)
            if turn == "stash":
                return 0.0
            if turn == "refill":
                break
            with self._refilled:  # another thread is taking a batch: wait for it
                self._refilled.wait(0.05)
        grant = self._take(key)
        if grant.wait > 0:
            self._sleep(grant.wait)
        return grant.wait

    async def acquire_async(self, key: str) -> float:
        """`acquire` for an event loop: the database call runs in a thread, the waits are
        `asyncio.sleep`."""
        if not self.enabled:
            return 0.0
        # The tasks waiting for a refill on this loop wait on one event, not in a poll each:
        # the worker's loop may hold hundreds of replies for one number.
        waiting = (id(asyncio.get_running_loop()), key)
        while True:
            turn = self._turn(key)
            if turn == "stash":
                return 0.0
            if turn == "refill":
                break
            refilled = self._refilled_async.setdefault(waiting, asyncio.Event())
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                # Bounded: a thread or another loop may be the one refilling.
                await asyncio.wait_for(refilled.wait(), 0.05)
        try:
            grant = await asyncio.to_thread(self._take, key)
        finally:
            waiters = self._refilled_async.pop(waiting, None)
            if waiters is not None:
                waiters.set()
        if grant.wait > 0:
            await asyncio.sleep(grant.wait)
        return grant.wait

    def _turn(self, key: str) -> str:
        """'stash': a token this process took earlier was spent (still fresh); 'refill': the
        caller takes the next batch from the database; 'wait': another thread is doing so.
        One thread at a time refills a key, so the threads of a process that find the stash
        empty together take one batch, not one each."""
        with self._lock:
            stash = self._stash.get(key)
            if stash is not None and stash.tokens > 0 and self._clock() < stash.usable_until:
                stash.tokens -= 1
                return "stash"
            if key in self._refilling:
                return "wait"
            self._refilling.add(key)
            return "refill"

    def _take(self, key: str) -> Grant:
        """Take a batch (one token of it for the caller), keep the rest for `hold_seconds`."""
        try:
            grant = self.buckets.take_send_tokens(key, self.batch, rate=self.rate, burst=self.burst)
            if grant.tokens > 1:
                with self._lock:
                    usable_until = self._clock() + grant.wait + self.hold_seconds
                    self._stash[key] = _Stash(grant.tokens - 1, usable_until)
            return grant
        finally:
            with self._lock:
                self._refilling.discard(key)
            with self._refilled:
                self._refilled.notify_all()

    def pause(self, key: str, seconds: float) -> None:
        """No process sends from `key` for `seconds`."""
        if not self.enabled:
            return
        with self._lock:
            self._stash.pop(key, None)
        self.buckets.pause_sends(key, seconds, rate=self.rate, burst=self.burst)


class _Streaks:
    """How many throttling answers in a row a key got lately (this process's view)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Record one more answer; how many came before it."""
        now = self._clock()
        with self._lock:
            count, at = self._counts.get(key, (0, now))
            if now - at > _STREAK_MEMORY_SECONDS:
                count = 0
            self._counts[key] = (count + 1, now)
            if len(self._counts) > 10_000:  # contacts come and go: forget the oldest half
                for stale in sorted(self._counts, key=lambda k: self._counts[k][1])[:5_000]:
                    del self._counts[stale]
            return count

    def clear(self, key: str) -> None:
        if key in self._counts:
            with self._lock:
                self._counts.pop(key, None)


class PacedSender:
    """A sender that waits for its number's turn before each send and answers Meta's
    throttling codes (module docstring). Everything else is the wrapped sender's."""

    def __init__(
        self,
        sender: Sender,
        pacer: Pacer | None,
        *,
        halt: threading.Event | None = None,
        max_pause_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`pacer` None: no pacing (a sandbox). `halt` set: refuse to send (the process is
        stopping and has given its jobs back)."""
        self.sender = sender
        self.provider: Provider = sender.provider
        self.pacer = pacer
        self.halt = halt
        self.max_pause_seconds = max_pause_seconds
        self._throughput = _Streaks(clock)
        self._pairs = _Streaks(clock)

    def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        key = f"{self.sender.provider}:{phone_number_id}"
        if self.pacer is not None:
            waited = self.pacer.acquire(key)
            if self.pacer.enabled:
                metrics.PACING_WAIT.observe(waited)
        if self.halt is not None and self.halt.is_set():
            raise SendError("not sent: this process is stopping", retryable=True)
        pair = f"{key}:{recipient.wa_id or recipient.user_id}"
        try:
            if reply_to is None:
                result = self.sender.send(phone_number_id, message, recipient)
            else:
                result = self.sender.send(phone_number_id, message, recipient, reply_to=reply_to)
        except SendError as error:
            self._refused(key, pair, error)
            raise
        self._accepted(key, pair)
        return result

    async def send_async(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        executor: Executor | None = None,
    ) -> SendResult:
        """`send` on an event loop: the wait for a turn is awaited, and the send too when the
        sender has `send_async`; otherwise it runs on `executor`'s threads."""
        key = f"{self.sender.provider}:{phone_number_id}"
        if self.pacer is not None:
            waited = await self.pacer.acquire_async(key)
            if self.pacer.enabled:
                metrics.PACING_WAIT.observe(waited)
        if self.halt is not None and self.halt.is_set():
            raise SendError("not sent: this process is stopping", retryable=True)
        pair = f"{key}:{recipient.wa_id or recipient.user_id}"
        send_async = getattr(self.sender, "send_async", None)
        try:
            if send_async is not None:
                result: SendResult = await send_async(phone_number_id, message, recipient)
            else:
                loop = asyncio.get_running_loop()
                send = functools.partial(self.sender.send, phone_number_id, message, recipient)
                result = await loop.run_in_executor(executor, send)
        except SendError as error:
            self._refused(key, pair, error)
            raise
        self._accepted(key, pair)
        return result

    def _accepted(self, key: str, pair: str) -> None:
        self._throughput.clear(key)
        self._pairs.clear(pair)

    def _refused(self, key: str, pair: str, error: SendError) -> None:
        if error.code == THROUGHPUT_REACHED:
            metrics.THROTTLED.labels(code=str(error.code)).inc()
            self._throughput_reached(key, error)
        elif error.code == PAIR_RATE_LIMIT:
            metrics.THROTTLED.labels(code=str(error.code)).inc()
            self._pair_limited(pair, error)

    def _throughput_reached(self, key: str, error: SendError) -> None:
        streak = self._throughput.hit(key)
        pause = error.retry_after or min(self.max_pause_seconds, 2.0**streak)
        pause = min(pause, self.max_pause_seconds)
        if self.pacer is not None:
            self.pacer.pause(key, pause)
        error.retry_after = max(error.retry_after or 0.0, pause)
        logger.warning(
            "number %s: Meta says its throughput is reached (130429); every process pauses its "
            "sends from it for %.1fs",
            key,
            pause,
        )

    def _pair_limited(self, pair: str, error: SendError) -> None:
        streak = self._pairs.hit(pair)
        wait = min(self.max_pause_seconds * 5, 4.0**streak)
        error.retry_after = max(error.retry_after or 0.0, wait)
        logger.warning(
            "too many messages to one contact (131056); its next try waits at least %.0fs", wait
        )

    def close(self) -> None:
        self.sender.close()

    def __getattr__(self, name: str) -> Any:  # media upload and download, the token, …
        return getattr(self.sender, name)
