"""The worker process's event loop (`Gateway.start(event_loop=True)`): many jobs in flight on
one thread, the same guarantees as worker threads. Real SQLite files, real HTTP to loopback
fakes of Graph and Rasa."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes import (
    FakeGraph,
    FakeRasa,
    fake_graph_fixture,  # noqa: F401 (a fixture)
    fake_rasa_fixture,  # noqa: F401 (a fixture)
    text_body,
)
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.backends.rasa import RasaBackend
from whatsapp_api_integration.core.contract import IncomingMessage
from whatsapp_api_integration.core.events import Provider, Recipient
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.core.outbound import OutgoingMessage
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.providers import SendResult
from whatsapp_api_integration.store import Store

pytestmark = pytest.mark.timeout(60)

MakeGateway = Callable[..., Gateway]  # the `make_gateway` fixture (conftest.py)


def deliver(gateway: Gateway, wamid: str, text: str, contact: str) -> None:
    body = text_body(wamid, text, contact)
    gateway.accept(body, {"Content-Type": "application/json"}, parse_webhook(body))


def wait_for(done: Callable[[], bool], what: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what()
        time.sleep(0.01)


class AllAtOnce:
    """A backend whose every answer waits until `expected` questions are in flight together:
    it can only answer if the worker holds them all at once. Records the threads it ran on."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.in_flight = 0
        self.most = 0
        self.threads: set[int] = set()
        self._everyone: asyncio.Event | None = None

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        raise AssertionError("an event loop awaits answer_async")

    async def answer_async(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        self.threads.add(threading.get_ident())
        if self._everyone is None:
            self._everyone = asyncio.Event()
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight == self.expected:
            self._everyone.set()
        await asyncio.wait_for(self._everyone.wait(), 20)
        self.in_flight -= 1
        return [{"text": f"Você disse: {incoming.text}"}]


def test_many_slow_answers_in_flight_on_one_thread(
    make_gateway: MakeGateway, fake_graph: FakeGraph
) -> None:
    backend = AllAtOnce(expected=40)
    gateway = make_gateway(backend, workers=40, poll_interval_seconds=0.05)
    for n in range(40):
        deliver(gateway, f"wamid.slow.{n}", f"m{n}", f"55619{n:08d}")
    gateway.start(event_loop=True)
    wait_for(lambda: len(fake_graph.message_requests) == 40, gateway.stats)
    workers = {t.name for t in threading.enumerate() if t.name.startswith("whatsapp-worker")}
    gateway.stop()

    assert backend.most == 40  # every question was in flight at once
    assert len(backend.threads) == 1  # ... on the loop's one thread
    # One thread worked the jobs: the bot and Graph were awaited, not given a thread each.
    assert workers == {"whatsapp-worker-loop"}
    assert sorted(fake_graph.texts()) == sorted(f"Você disse: m{n}" for n in range(40))
    assert gateway.stats().get("messages_answered") == 40


def test_a_blocking_backend_runs_on_the_loops_threads(
    make_gateway: MakeGateway, fake_graph: FakeGraph
) -> None:
    loop_threads: set[str] = set()

    def answer(incoming: IncomingMessage) -> list[dict[str, Any]]:
        loop_threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return [{"text": f"ok {incoming.text}"}]

    gateway = make_gateway(CallableBackend(answer), workers=4, poll_interval_seconds=0.05)
    gateway.start(event_loop=True)
    for n in range(12):
        deliver(gateway, f"wamid.block.{n}", f"b{n}", f"55619{n % 3:08d}")
    wait_for(lambda: len(fake_graph.message_requests) == 12, gateway.stats)
    gateway.stop()

    assert sorted(fake_graph.texts()) == sorted(f"ok b{n}" for n in range(12))
    assert all(name.startswith("whatsapp-worker") for name in loop_threads)
    for contact in range(3):  # each contact's replies in the order it wrote
        mine = [int(t[4:]) for t in fake_graph.texts() if int(t[4:]) % 3 == contact]
        assert mine == sorted(mine)


def test_a_retry_falls_due_on_the_loop(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_rasa.script((503, {"error": "loading"}))
    gateway = make_gateway(
        RasaBackend(fake_rasa.url, timeout=5), workers=2, poll_interval_seconds=30
    )
    gateway.start(event_loop=True)
    deliver(gateway, "wamid.retry", "oi", "5561911111111")
    # The poll interval is 30 s: only the retry's due time can wake the loop in time.
    wait_for(lambda: len(fake_graph.message_requests) == 1, gateway.stats, timeout=10)
    gateway.stop()
    row = gateway.store.job_state("wamid.retry")
    assert row is not None
    assert (row["state"], row["attempts"]) == ("answered", 2)


class Stuck:
    """A backend that answers only when released."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release: asyncio.Event | None = None

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        raise AssertionError("an event loop awaits answer_async")

    async def answer_async(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        self.release = asyncio.Event()
        self.asked.set()
        await self.release.wait()
        return [{"text": "tarde demais"}]


def test_a_stop_gives_back_the_jobs_that_outlast_the_grace_period(
    make_gateway: MakeGateway, fake_graph: FakeGraph
) -> None:
    backend = Stuck()
    gateway = make_gateway(backend, workers=2, poll_interval_seconds=0.05)
    gateway.start(event_loop=True)
    deliver(gateway, "wamid.stuck", "oi", "5561911111111")
    assert backend.asked.wait(10)

    started = time.monotonic()
    gateway.stop(timeout=0.3)
    assert time.monotonic() - started < 5  # the loop did not wait for the bot
    assert not any(thread.name == "whatsapp-worker-loop" for thread in threading.enumerate())
    row = gateway.store.job_state("wamid.stuck")
    assert row is not None
    assert row["state"] == "received"  # back in the queue for another worker, at once
    assert fake_graph.message_requests == []


def test_a_stop_lets_the_jobs_in_hand_finish(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_rasa.delay = 0.4
    gateway = make_gateway(
        RasaBackend(fake_rasa.url, timeout=5), workers=4, poll_interval_seconds=0.05
    )
    gateway.start(event_loop=True)
    deliver(gateway, "wamid.finish", "oi", "5561911111111")
    wait_for(lambda: bool(fake_rasa.messages), gateway.stats)
    gateway.stop(timeout=10)
    assert fake_graph.texts() == ["Você disse: oi"]
    row = gateway.store.job_state("wamid.finish")
    assert row is not None
    assert row["state"] == "answered"


def test_a_commit_by_another_process_wakes_the_loop(
    tmp_path: Path, make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    """SQLite: the web process's commit reaches the worker process through the file (`PRAGMA
    data_version`), not a 30 s poll. A second Store stands for the web process."""
    worker = make_gateway(
        RasaBackend(fake_rasa.url, timeout=5), workers=2, poll_interval_seconds=30
    )
    worker.start(event_loop=True)
    time.sleep(0.1)  # idle: waiting up to 30 s
    web = Gateway(
        GatewayConfig(database_url=f"sqlite:///{tmp_path / 'gateway.db'}", workers=0),
        RasaBackend(fake_rasa.url, timeout=5),
        {},
    )
    try:
        deliver(web, "wamid.elsewhere", "oi", "5561911111111")
        wait_for(lambda: len(fake_graph.message_requests) == 1, worker.stats, timeout=5)
    finally:
        web.close()
        worker.stop()


def test_the_commit_watcher_tells_of_other_connections_commits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'watched.db'}"
    watched, writer = Store(url), Store(url)
    watched.migrate()
    told = threading.Event()
    watcher = watched.job_listener(told.set, interval=0.01)
    assert watcher is not None
    watcher.start()
    try:
        time.sleep(0.1)
        assert not told.is_set()  # nobody wrote yet
        body = text_body("wamid.watch", "oi")
        writer.accept(
            body=body, headers={}, provider="cloud_api", messages=[], statuses=[], events=[]
        )
        assert told.wait(5)
    finally:
        watcher.stop()
        watched.close()
        writer.close()
    assert Store("sqlite://").job_listener(told.set) is None  # in memory: one process only


class SlowGraph:
    """A sender whose send is under way until released: Meta has the request, we wait."""

    provider: Provider = "cloud_api"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.release: asyncio.Event | None = None

    def send(
        self,
        phone_number_id: str,
        message: OutgoingMessage,
        recipient: Recipient,
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        raise AssertionError("an event loop awaits send_async")

    async def send_async(self, *args: Any) -> SendResult:
        self.loop = asyncio.get_running_loop()
        self.release = asyncio.Event()
        self.started.set()
        await self.release.wait()
        return SendResult(message_id="wamid.accepted.by.meta")

    def close(self) -> None:
        pass


def test_a_stop_that_cannot_wait_lets_a_send_under_way_record_its_reply(
    tmp_path: Path,
) -> None:
    """Cancelling a POST Meta may have accepted would leave the reply `pending`, and the next
    worker would send it again; the send ends instead, and its wamid is recorded."""
    graph = SlowGraph()
    config = GatewayConfig(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        workers=2,
        poll_interval_seconds=0.05,
        default_phone_number_id="106540352242922",
    )
    answers = CallableBackend(lambda incoming: [{"text": "recebido"}])
    gateway = Gateway(config, answers, {"cloud_api": graph})
    try:
        gateway.start(event_loop=True)
        deliver(gateway, "wamid.sending", "oi", "5561911111111")
        assert graph.started.wait(10)
        gateway.stop(timeout=0.2)  # grace over: the job is given back
        assert graph.loop is not None
        assert graph.release is not None
        graph.loop.call_soon_threadsafe(graph.release.set)  # Meta answers
        wait_for(
            lambda: (
                [
                    item["wamid"]
                    for item in gateway.conversation("5561911111111")
                    if item["direction"] == "out"
                ]
                == ["wamid.accepted.by.meta"]
            ),
            lambda: gateway.conversation("5561911111111"),
        )
    finally:
        gateway.close()
