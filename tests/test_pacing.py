"""Outbound pacing (pipeline/pacing.py): token buckets shared through the database, Meta's
throttling codes, order under pacing. Waits are read from what the pacer asks to sleep, not
from a clock, so no timing decides these tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import (
    FakeGraph,
    cloud_body,
    fake_graph_fixture,  # noqa: F401 (a fixture)
    messages_body,
    text_body,
    text_message,
)
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.core.outbound import OutgoingMessage, render
from whatsapp_api_integration.pipeline import metrics
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.pipeline.pacing import PacedSender, Pacer
from whatsapp_api_integration.providers import SendError
from whatsapp_api_integration.providers.cloud_api import CloudApiClient
from whatsapp_api_integration.store import Store
from whatsapp_api_integration.store.buckets import Grant

pytestmark = pytest.mark.timeout(60)

KEY = "cloud_api:106540352242922"


@pytest.fixture
def url(tmp_path: Path) -> str:
    store = Store(f"sqlite:///{tmp_path / 'pacing.db'}")
    store.migrate()
    store.close()
    return f"sqlite:///{tmp_path / 'pacing.db'}"


@pytest.fixture
def stores(url: str) -> Iterator[list[Store]]:
    """Two stores on one database file: two processes' views of the same buckets."""
    opened = [Store(url), Store(url)]
    yield opened
    for store in opened:
        store.close()


class Sleeps:
    """Records what a pacer asks to sleep, and sleeps nothing."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def test_a_full_bucket_gives_its_burst_then_reserves_turns_in_order(stores: list[Store]) -> None:
    store = stores[0]
    assert store.take_send_tokens(KEY, 5, rate=0.5, burst=5) == Grant(5, 0.0)
    first = store.take_send_tokens(KEY, 5, rate=0.5, burst=5)
    second = store.take_send_tokens(KEY, 5, rate=0.5, burst=5)
    # Empty: one token each, as a reservation 2 s (1/rate) apart.
    assert (first.tokens, second.tokens) == (1, 1)
    assert 0 < first.wait <= 2.0
    assert second.wait == pytest.approx(first.wait + 2.0, abs=0.05)


def test_two_processes_share_one_bucket(stores: list[Store]) -> None:
    rate, burst = 0.01, 10  # hardly any refill while the test runs
    sleeps = [Sleeps(), Sleeps()]
    pacers = [
        Pacer(store, rate=rate, burst=burst, sleep=sleeps[n]) for n, store in enumerate(stores)
    ]
    for turn in range(30):
        pacers[turn % 2].acquire(KEY)
    waits = sleeps[0].asked + sleeps[1].asked
    # Ten sends went at once between both processes; the twenty others each waited their turn.
    assert len(waits) == 20
    assert sorted(waits)[0] > 0
    assert max(waits) == pytest.approx(20 / rate, rel=0.01)


def test_batches_spare_round_trips(stores: list[Store]) -> None:
    class Counting:
        def __init__(self, store: Store) -> None:
            self.store, self.takes = store, 0

        def take_send_tokens(self, key: str, wanted: int, *, rate: float, burst: float) -> Grant:
            self.takes += 1
            return self.store.take_send_tokens(key, wanted, rate=rate, burst=burst)

        def pause_sends(self, key: str, seconds: float, *, rate: float, burst: float) -> None:
            self.store.pause_sends(key, seconds, rate=rate, burst=burst)

    counting = Counting(stores[0])
    pacer = Pacer(counting, rate=1000, burst=1000, sleep=Sleeps())
    for _ in range(500):
        pacer.acquire(KEY)
    assert pacer.batch == 250
    assert counting.takes <= 4  # 250 tokens a round trip, not one


def test_pacing_off_never_touches_the_database() -> None:
    class Refusing:
        def take_send_tokens(self, *args: Any, **kwargs: Any) -> Grant:
            raise AssertionError("pacing is off")

        def pause_sends(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("pacing is off")

    pacer = Pacer(Refusing(), rate=0, burst=80)
    assert not pacer.enabled
    for _ in range(1000):
        assert pacer.acquire(KEY) == 0.0
    pacer.pause(KEY, 10)


def test_a_pause_makes_every_process_wait(stores: list[Store]) -> None:
    sleeps = Sleeps()
    pacer = Pacer(stores[1], rate=10, burst=10, sleep=sleeps)
    stores[0].pause_sends(KEY, 5.0, rate=10, burst=10)  # another process met 130429
    pacer.acquire(KEY)
    assert sleeps.asked
    assert sleeps.asked[0] == pytest.approx(5.1, abs=0.15)


# ---- Meta's throttling answers --------------------------------------------------------------


@pytest.fixture
def client(fake_graph: FakeGraph) -> Iterator[CloudApiClient]:
    client = CloudApiClient("test-token", base_url=fake_graph.url, timeout=5)
    yield client
    client.close()


def throttled(code: str) -> float:
    return metrics.REGISTRY.get_sample_value("whatsapp_sends_throttled_total", {"code": code}) or 0


def _text(body: str) -> OutgoingMessage:
    return render([{"text": body}]).messages[0]


def test_130429_pauses_the_number_for_everyone(
    stores: list[Store], fake_graph: FakeGraph, client: CloudApiClient
) -> None:
    fake_graph.script(FakeGraph.error(130429, "Rate limit hit", status=429))
    throttled_before = throttled("130429")
    sleeps = Sleeps()
    pacer = Pacer(stores[0], rate=10, burst=10, sleep=sleeps)
    sender = PacedSender(client, pacer)
    with pytest.raises(SendError) as caught:
        sender.send("106540352242922", _text("um"), Recipient(wa_id="5561911111111"))
    assert caught.value.code == 130429
    assert caught.value.retryable
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1.0
    # Another process, sending to another contact from the same number, waits too.
    other_sleeps = Sleeps()
    other = PacedSender(client, Pacer(stores[1], rate=10, burst=10, sleep=other_sleeps))
    other.send("106540352242922", _text("dois"), Recipient(wa_id="5561922222222"))
    assert other_sleeps.asked
    assert other_sleeps.asked[0] >= 0.9
    assert fake_graph.texts() == ["um", "dois"]
    assert throttled("130429") == throttled_before + 1  # whatsapp_sends_throttled_total


def test_131056_delays_that_contact_only_and_more_each_time(
    stores: list[Store], fake_graph: FakeGraph, client: CloudApiClient
) -> None:
    sleeps = Sleeps()
    sender = PacedSender(client, Pacer(stores[0], rate=10, burst=10, sleep=sleeps))
    crowded = Recipient(wa_id="5561911111111")
    waits = []
    for _ in range(3):
        fake_graph.script(FakeGraph.error(131056, "pair rate limit hit"))
        with pytest.raises(SendError) as caught:
            sender.send("106540352242922", _text("de novo"), crowded)
        waits.append(caught.value.retry_after)
    assert waits == [1.0, 4.0, 16.0]  # Meta: retry after 4^X seconds
    sender.send("106540352242922", _text("outro contato"), Recipient(wa_id="5561922222222"))
    assert sleeps.asked == []  # the number was not paused for the others


def test_send_async_keeps_the_same_bookkeeping(
    stores: list[Store], fake_graph: FakeGraph, client: CloudApiClient
) -> None:
    """The worker process's event loop sends with `send_async`: 131056 grows the contact's
    wait the same way, and another contact is not held back."""
    sender = PacedSender(client, Pacer(stores[0], rate=10, burst=10))
    crowded = Recipient(wa_id="5561911111111")

    async def on_a_loop() -> list[float | None]:
        waits = []
        try:
            for _ in range(3):
                fake_graph.script(FakeGraph.error(131056, "pair rate limit hit"))
                with pytest.raises(SendError) as caught:
                    await sender.send_async("106540352242922", _text("de novo"), crowded)
                waits.append(caught.value.retry_after)
            other = Recipient(wa_id="5561922222222")
            await sender.send_async("106540352242922", _text("outro contato"), other)
        finally:
            await client.aclose()
        return waits

    assert asyncio.run(on_a_loop()) == [1.0, 4.0, 16.0]
    assert fake_graph.texts()[-1] == "outro contato"


# ---- through the pipeline -------------------------------------------------------------------


def _gateway(url: str, fake_graph: FakeGraph, backend: Any, **config: Any) -> Gateway:
    client = CloudApiClient("test-token", base_url=fake_graph.url, timeout=5)
    settings: dict[str, Any] = {
        "database_url": url,
        "workers": 0,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        **config,
    }
    return Gateway(GatewayConfig(**settings), backend, {"cloud_api": client})


def _drain(gateway: Gateway, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, gateway.stats()
        gateway.process_available()
        time.sleep(0.01)


def test_130429_then_success_answers_once(url: str, fake_graph: FakeGraph) -> None:
    fake_graph.script(FakeGraph.error(130429, "Rate limit hit", status=429))
    backend = CallableBackend(lambda incoming: [{"text": f"Você disse: {incoming.text}"}])
    gateway = _gateway(url, fake_graph, backend, send_rate=50, send_burst=5)
    try:
        body = text_body("wamid.throttled", "oi")
        gateway.accept(body, {}, parse_webhook(body))
        _drain(gateway, lambda: gateway.stats().get("messages_answered", 0) == 1)
        row = gateway.store.job_state("wamid.throttled")
        assert row is not None
        assert row["attempts"] == 2
        assert "130429" in (row["last_error"] or "")
    finally:
        gateway.close()
    assert fake_graph.texts() == ["Você disse: oi", "Você disse: oi"]  # refused, then accepted
    assert len(fake_graph.message_requests) == 2


def test_a_contacts_replies_keep_their_order_under_pacing(url: str, fake_graph: FakeGraph) -> None:
    """Four worker threads, three contacts, three messages each answered with five replies,
    sent at most 200 a second in bursts of one: every contact gets its fifteen replies in
    order."""

    def five_replies(incoming: Any) -> list[dict[str, str]]:
        return [{"text": f"{incoming.text}-{n}"} for n in range(5)]

    gateway = _gateway(
        url,
        fake_graph,
        CallableBackend(five_replies),
        workers=4,
        send_rate=200,
        send_burst=1,
        poll_interval_seconds=0.02,
    )
    contacts = [f"55619000000{c}" for c in range(3)]
    try:
        for n in range(3):
            body = messages_body(
                *(
                    text_message(f"wamid.{c}.{n}", f"{c}{n}", wa_id)
                    for c, wa_id in enumerate(contacts)
                )
            )
            gateway.accept(body, {}, parse_webhook(body))
        gateway.start()
        deadline = time.monotonic() + 30
        while gateway.stats().get("messages_answered", 0) < 9:
            assert time.monotonic() < deadline, gateway.stats()
            time.sleep(0.02)
    finally:
        gateway.close()
    for c, wa_id in enumerate(contacts):
        to_contact = [
            body["text"]["body"] for body in fake_graph.message_bodies if body["to"] == wa_id
        ]
        assert to_contact == [f"{c}{n}-{k}" for n in range(3) for k in range(5)]


def test_130429_in_a_webhooks_errors_pauses_the_number_too(url: str, fake_graph: FakeGraph) -> None:
    gateway = _gateway(url, fake_graph, CallableBackend(lambda incoming: []), send_rate=80)
    try:
        body = cloud_body({"errors": [{"code": 130429, "title": "Rate limit hit"}]})
        gateway.accept(body, {}, parse_webhook(body))
        (bucket,) = gateway.store.send_buckets(rate=80, burst=80)
    finally:
        gateway.close()
    assert bucket.key == KEY
    assert bucket.tokens < 0  # the next send from this number waits about a second


def test_an_event_loop_takes_turns_from_the_same_bucket(stores: list[Store]) -> None:
    import asyncio

    pacer = Pacer(stores[0], rate=1, burst=2)
    Pacer(stores[1], rate=1, burst=2).acquire(KEY)  # another process took one token

    async def twice() -> list[float]:
        return [await pacer.acquire_async(KEY) for _ in range(2)]

    waits = asyncio.run(twice())
    assert waits[0] == 0.0
    assert 0 < waits[1] <= 1.0  # the burst was spent: the next turn is a second later
