"""The pipeline's guarantees (DESIGN.md §10), end to end: real SQLite files, real HTTP to
loopback fakes of Graph and Rasa, real worker threads where order and parallelism matter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from fakes import (
    FakeGraph,
    FakeRasa,
    closed_port_url,
    cloud_body,
    fake_graph_fixture,  # noqa: F401 (a fixture)
    fake_rasa_fixture,  # noqa: F401 (a fixture)
    messages_body,
    status_body,
    text_body,
    text_message,
)
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.backends.rasa import RasaBackend
from whatsapp_api_integration.core.contract import IncomingMessage
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline import metrics
from whatsapp_api_integration.pipeline.gateway import (
    AcceptResult,
    Gateway,
    GatewayConfig,
    mask_contact,
)
from whatsapp_api_integration.providers.cloud_api import CloudApiClient

pytestmark = pytest.mark.timeout(60)

MakeGateway = Callable[..., Gateway]  # the `make_gateway` fixture (conftest.py)


def deliver(gateway: Gateway, body: bytes) -> AcceptResult:
    return gateway.accept(body, {"Content-Type": "application/json"}, parse_webhook(body))


def drain(gateway: Gateway, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Work jobs (retries included, as they come due) until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout}s: {gateway.stats()}"
        gateway.process_available()
        time.sleep(0.005)


def state_of(gateway: Gateway, wamid: str) -> str:
    row = gateway.store.job_state(wamid)
    assert row is not None
    return str(row["state"])


def rasa(fake_rasa: FakeRasa) -> RasaBackend:
    return RasaBackend(fake_rasa.url, timeout=5)


class Recorder:
    """A callable backend that records what it got and answers with `reply(incoming)`."""

    def __init__(self, reply: Callable[[IncomingMessage], Any] | None = None) -> None:
        self.seen: list[IncomingMessage] = []
        self.reply = reply or (lambda incoming: [{"text": f"Você disse: {incoming.text}"}])
        self.lock = threading.Lock()

    def __call__(self, incoming: IncomingMessage) -> Any:
        with self.lock:
            self.seen.append(incoming)
        return self.reply(incoming)


# ---- once -----------------------------------------------------------------------------------


def test_the_same_body_three_times_is_answered_once(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    body = text_body("wamid.in.1", "oi")

    results = [deliver(gateway, body) for _ in range(3)]
    gateway.process_available()
    gateway.process_available()

    assert [(r.new_messages, r.duplicates) for r in results] == [(1, 0), (0, 1), (0, 1)]
    assert [m["message"] for m in fake_rasa.messages] == ["oi"]
    assert fake_rasa.messages[0]["sender"] == "+5561987654321"
    assert fake_graph.texts() == ["Você disse: oi"]
    assert fake_graph.message_bodies[0]["to"] == "5561987654321"
    assert "/106540352242922/messages" in fake_graph.message_requests[0].path
    assert state_of(gateway, "wamid.in.1") == "answered"


def test_concurrent_deliveries_of_one_message_store_it_once(
    make_gateway: MakeGateway, fake_rasa: FakeRasa
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    body = text_body("wamid.race", "oi")
    results: list[AcceptResult] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        results.append(deliver(gateway, body))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.new_messages for r in results) == 1
    assert sum(r.duplicates for r in results) == 7


def test_a_reply_accepted_before_a_failure_is_not_sent_again(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_rasa.script((200, [{"text": "um"}, {"text": "dois"}]))
    fake_graph.script(
        (200, {"messages": [{"id": "wamid.out.1"}]}),
        (500, {"error": {"message": "(#131000) Something went wrong", "code": 131000}}),
    )
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.2", "oi"))

    drain(gateway, lambda: state_of(gateway, "wamid.in.2") == "answered")

    assert fake_graph.texts() == ["um", "dois", "dois"]  # "dois" failed once, then went
    assert len(fake_rasa.messages) == 1  # the stored answer was used for the retry
    outbound = [i for i in gateway.conversation("5561987654321") if i["direction"] == "out"]
    assert [(i["seq"], i["state"]) for i in outbound] == [(0, "accepted"), (1, "accepted")]
    assert outbound[0]["wamid"] == "wamid.out.1"


def test_a_job_whose_worker_died_after_the_backend_answered_asks_it_no_more(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.3", "oi"))
    # Leases long enough that a slow first query (SQLAlchemy 1.4 compiles it) cannot outlast
    # them before the next line looks.
    dead_worker = gateway.store.claim("dead-worker", lease_seconds=1.0)
    assert dead_worker is not None
    assert gateway.store.save_responses(dead_worker, [{"text": "guardada"}])

    assert gateway.process_available() == 0  # its lease still holds
    time.sleep(1.1)
    assert gateway.process_available() == 1

    assert fake_rasa.messages == []
    assert fake_graph.texts() == ["guardada"]
    assert state_of(gateway, "wamid.in.3") == "answered"
    assert not gateway.store.finish(dead_worker)  # the dead worker's late write is fenced off


def test_an_expired_lease_is_taken_back(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.4", "oi"))
    assert gateway.store.claim("dead-worker", lease_seconds=1.0) is not None
    assert gateway.store.claim("another", lease_seconds=5) is None

    time.sleep(1.1)
    assert gateway.process_available() == 1

    assert fake_graph.texts() == ["Você disse: oi"]
    row = gateway.store.job_state("wamid.in.4")
    assert row is not None
    assert (row["state"], row["attempts"]) == ("answered", 2)


# ---- order ----------------------------------------------------------------------------------


@pytest.mark.parametrize("event_loop", [False, True], ids=["threads", "event loop"])
def test_one_contact_in_order_while_contacts_proceed_in_parallel(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph, event_loop: bool
) -> None:
    fake_rasa.delay = 0.03
    gateway = make_gateway(rasa(fake_rasa), workers=4, poll_interval_seconds=0.05)
    gateway.start(event_loop=event_loop)
    ana, bia = "5561900000001", "5561900000002"
    for n in range(1, 6):
        deliver(gateway, text_body(f"wamid.a{n}", f"a{n}", ana))
        deliver(gateway, text_body(f"wamid.b{n}", f"b{n}", bia))
    deadline = time.monotonic() + 15
    while len(fake_graph.message_requests) < 10:
        assert time.monotonic() < deadline, gateway.stats()
        time.sleep(0.01)
    gateway.stop()

    seen = [m["message"] for m in fake_rasa.messages]
    assert [t for t in seen if t.startswith("a")] == ["a1", "a2", "a3", "a4", "a5"]
    assert [t for t in seen if t.startswith("b")] == ["b1", "b2", "b3", "b4", "b5"]
    # Contacts interleave: Bia is not held back until Ana is done.
    assert seen.index("b1") < seen.index("a5")
    # A contact's next message reaches the bot only after its previous reply was accepted.
    calls = {r.json["message"]: r.at for r in fake_rasa.requests}
    sends = {r.json["text"]["body"].split()[-1]: r.at for r in fake_graph.message_requests}
    for who in "ab":
        for n in range(1, 5):
            assert sends[f"{who}{n}"] < calls[f"{who}{n + 1}"]


def test_two_gateways_on_one_database_answer_each_message_once(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    recorder = Recorder()
    gateways = []
    for _ in range(2):
        config = GatewayConfig(
            database_url=f"sqlite:///{tmp_path / 'shared.db'}",
            workers=3,
            poll_interval_seconds=0.02,
        )
        client = CloudApiClient("test-token", base_url=fake_graph.url)
        gateways.append(Gateway(config, CallableBackend(recorder), {"cloud_api": client}))
    try:
        for gateway in gateways:
            gateway.start()
        for n in range(24):
            deliver(gateways[n % 2], text_body(f"wamid.m{n}", f"m{n}", f"55619000000{n % 4:02d}"))
        deadline = time.monotonic() + 20
        while len(fake_graph.message_requests) < 24:
            assert time.monotonic() < deadline, gateways[0].stats()
            time.sleep(0.01)
        time.sleep(0.1)
    finally:
        for gateway in gateways:
            gateway.close()

    texts = fake_graph.texts()
    assert sorted(texts) == sorted(f"Você disse: m{n}" for n in range(24))
    for contact in range(4):
        mine = [int(t.split("m")[-1]) for t in texts if int(t.split("m")[-1]) % 4 == contact]
        assert mine == sorted(mine)


# ---- retry and dead letters -----------------------------------------------------------------


def test_a_bot_that_is_down_is_retried_until_it_answers(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_rasa.down = True
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.5", "oi"))

    gateway.process_available(limit=1)
    row = gateway.store.job_state("wamid.in.5")
    assert row is not None
    assert (row["state"], row["attempts"]) == ("received", 1)
    assert "503" in row["last_error"]

    fake_rasa.down = False
    drain(gateway, lambda: state_of(gateway, "wamid.in.5") == "answered")
    assert fake_graph.texts() == ["Você disse: oi"]


def test_a_bot_nobody_listens_to_becomes_a_dead_letter_after_max_attempts(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(RasaBackend(closed_port_url(), timeout=2), max_attempts=3)
    deliver(gateway, text_body("wamid.in.6", "oi"))

    drain(gateway, lambda: state_of(gateway, "wamid.in.6") == "dead")

    (letter,) = gateway.dead_letters()
    assert (letter.wamid, letter.attempts, letter.retryable) == ("wamid.in.6", 3, True)
    assert "unreachable" in letter.error


def test_a_bot_answer_that_is_not_a_list_is_final(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_rasa.script((200, {"text": "not a list"}))
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.7", "oi"))

    gateway.process_available()

    (letter,) = gateway.dead_letters()
    assert letter.attempts == 1
    assert not letter.retryable
    assert "expected a list" in letter.error
    assert fake_graph.message_requests == []


def test_graph_throttling_is_retried_and_the_reply_sent_once(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    retried_before = metrics.SENDS_RETRIED._value.get()
    fake_graph.script(
        (429, FakeGraph.error(130429, "Rate limit hit")[1]),
        (400, FakeGraph.error(131056, "pair rate limit")[1]),  # a 400, yet retryable
    )
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.8", "oi"))

    drain(gateway, lambda: state_of(gateway, "wamid.in.8") == "answered")

    assert fake_graph.texts() == ["Você disse: oi"] * 3
    accepted = [i for i in gateway.conversation("5561987654321") if i.get("wamid")]
    assert [i["direction"] for i in accepted] == ["in", "out"]
    assert metrics.SENDS_RETRIED._value.get() == retried_before + 2
    assert len(fake_rasa.messages) == 1


def test_retry_after_is_honoured(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_graph.script((429, FakeGraph.error(4, "too many calls")[1], {"Retry-After": "1"}))
    gateway = make_gateway(rasa(fake_rasa), retry_max_seconds=5)
    deliver(gateway, text_body("wamid.in.9", "oi"))

    gateway.process_available()

    row = gateway.store.job_state("wamid.in.9")
    assert row is not None
    assert row["state"] == "received"
    assert row["available_at"] - time.time() > 0.8


def test_an_invalid_parameter_is_a_dead_letter_after_one_try(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_graph.script(FakeGraph.error(100, "Invalid parameter"))
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.10", "oi"))

    gateway.process_available()
    time.sleep(0.05)
    gateway.process_available()

    assert len(fake_graph.message_requests) == 1
    (letter,) = gateway.dead_letters()
    assert (letter.attempts, letter.retryable) == (1, False)
    assert "code 100" in letter.error
    assert gateway.stats()["dead_letters"] == 1
    assert state_of(gateway, "wamid.in.10") == "dead"


def test_a_dead_letter_is_replayed(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_graph.script(FakeGraph.error(131047, "Re-engagement message"))
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.11", "oi"))
    gateway.process_available()
    (letter,) = gateway.dead_letters()

    assert gateway.replay(letter.id)
    assert not gateway.replay(letter.id)  # once
    assert gateway.process_available() == 1

    assert state_of(gateway, "wamid.in.11") == "answered"
    assert gateway.dead_letters() == []
    history = gateway.dead_letter(letter.id)
    assert history is not None
    assert history.replayed_at is not None
    assert "131047" in history.error
    assert len(fake_rasa.messages) == 1  # the stored answer was sent, the bot not asked again
    assert len(fake_graph.message_requests) == 2


def test_a_dead_contact_message_does_not_block_the_next_one(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    fake_graph.script(FakeGraph.error(100, "Invalid parameter"))
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.12", "um"))
    deliver(gateway, text_body("wamid.in.13", "dois"))

    drain(gateway, lambda: state_of(gateway, "wamid.in.13") == "answered")

    assert state_of(gateway, "wamid.in.12") == "dead"
    assert fake_graph.texts() == ["Você disse: um", "Você disse: dois"]


# ---- statuses, unknown events, ignored messages ---------------------------------------------


def test_statuses_are_matched_to_our_reply_and_deduplicated(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.in.14", "oi"))
    gateway.process_available()
    sent = "wamid.fake.1"

    counts = [
        deliver(gateway, status_body(sent, s)).statuses for s in ("read", "delivered", "read")
    ]

    assert counts == [1, 1, 0]
    (reply,) = [i for i in gateway.conversation("5561987654321") if i["direction"] == "out"]
    assert reply["status"] == "read"  # a late `delivered` does not hide `read`
    assert [s["status"] for s in gateway.store.statuses(sent)] == ["read", "delivered"]
    assert gateway.stats()["statuses_matched"] == 2
    assert len(fake_rasa.messages) == 1  # statuses never reach the backend


def test_a_status_for_a_message_we_never_sent_is_kept_as_orphan(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    with caplog.at_level("INFO", logger="whatsapp_api_integration"):
        result = deliver(gateway, status_body("wamid.not.ours", "delivered"))
    gateway.process_available()

    assert result.statuses == 1
    assert gateway.stats()["statuses_orphan"] == 1
    assert "wamid.not.ours" in caplog.text
    assert fake_rasa.messages == []


def test_unknown_events_and_system_messages_are_stored_not_answered(
    make_gateway: MakeGateway, fake_rasa: FakeRasa
) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    system = {
        "from": "5561987654321",
        "id": "wamid.sys",
        "timestamp": "1750000000",
        "type": "system",
        "system": {"body": "mudou de número", "type": "user_changed_number", "wa_id": "556199"},
    }
    result = deliver(gateway, messages_body(system))
    unknown = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"x": 1}}]}],
        }
    ).encode()
    deliver(gateway, unknown)
    gateway.process_available()

    assert (result.new_messages, result.ignored) == (1, 1)
    assert state_of(gateway, "wamid.sys") == "ignored"
    assert fake_rasa.messages == []


def test_a_tapped_payload_reference_reaches_the_bot_as_the_payload(
    make_gateway: MakeGateway, fake_graph: FakeGraph
) -> None:
    long_payload = '/vote{"conversation_id": "' + "x" * 300 + '"}'

    def reply(incoming: IncomingMessage) -> list[dict[str, Any]]:
        if incoming.text == "oi":
            return [{"text": "Vota?", "buttons": [{"title": "Sim", "payload": long_payload}]}]
        return [{"text": "ok"}]

    recorder = Recorder(reply)
    gateway = make_gateway(CallableBackend(recorder))
    deliver(gateway, text_body("wamid.in.15", "oi"))
    gateway.process_available()
    button = fake_graph.message_bodies[0]["interactive"]["action"]["buttons"][0]["reply"]
    assert button["id"] != long_payload
    assert len(button["id"]) <= 256

    tap = {
        "from": "5561987654321",
        "id": "wamid.in.16",
        "timestamp": "1750000002",
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": button},
    }
    deliver(gateway, messages_body(tap))
    gateway.process_available()

    assert [incoming.text for incoming in recorder.seen] == ["oi", long_payload]


def test_workers_wake_on_accept(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(rasa(fake_rasa), workers=1, poll_interval_seconds=30)
    gateway.start()
    time.sleep(0.05)  # the worker is idle, waiting up to 30 s
    deliver(gateway, text_body("wamid.in.17", "oi"))
    deadline = time.monotonic() + 5
    while not fake_graph.message_requests:
        assert time.monotonic() < deadline, "the worker was not woken"
        time.sleep(0.01)
    gateway.stop()


def test_a_batch_of_messages_from_many_contacts(
    make_gateway: MakeGateway, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(CallableBackend(Recorder()))
    batch = [text_message(f"wamid.batch.{n}", f"t{n}", f"55619{n:08d}") for n in range(50)]
    result = deliver(gateway, messages_body(*batch))

    assert gateway.process_available() == 50
    assert result.new_messages == 50
    assert sorted(fake_graph.texts()) == sorted(f"Você disse: t{n}" for n in range(50))


def test_messages_with_no_sender_config_are_dead_letters(
    tmp_path: Path, fake_rasa: FakeRasa
) -> None:
    config = GatewayConfig(database_url=f"sqlite:///{tmp_path / 'g.db'}", workers=0)
    gateway = Gateway(config, rasa(fake_rasa), {})
    try:
        deliver(gateway, text_body("wamid.in.18", "oi"))
        gateway.process_available()
        (letter,) = gateway.dead_letters()
        assert "no sender configured" in letter.error
        row = gateway.store.job_state("wamid.in.18")
        assert row is not None
        assert json.loads(row["responses"]) == [
            {"recipient_id": "+5561987654321", "text": "Você disse: oi"}
        ]  # kept: a replay once a sender is configured does not ask the bot again
    finally:
        gateway.close()


def test_a_webhook_body_with_a_bsuid_only_contact_is_answered_to_the_bsuid(
    make_gateway: MakeGateway, fake_graph: FakeGraph
) -> None:
    gateway = make_gateway(CallableBackend(Recorder()))
    message = {
        "from_user_id": "BR.13491208655302741918",
        "id": "wamid.in.19",
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": "oi"},
    }
    contacts = [{"profile": {"name": "Ana"}, "user_id": "BR.13491208655302741918"}]
    body = cloud_body({"contacts": contacts, "messages": [message]})
    deliver(gateway, body)
    gateway.process_available()

    (sent,) = fake_graph.message_bodies
    assert sent.get("recipient") == "BR.13491208655302741918"
    assert "to" not in sent


SLOW_BOT = """
import pathlib, time

def answer(incoming):
    pathlib.Path(__file__).with_name("started").write_text(incoming.text)
    time.sleep(60)
    return [{"text": "too late"}]
"""

WORKER = """
import sys, threading
from whatsapp_api_integration.backends import load_backend
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.providers.sandbox import SandboxSender
config = GatewayConfig(database_url=sys.argv[1], workers=0, lease_seconds=0.5)
gateway = Gateway(config, load_backend("slowbot:answer", rasa_url=None, timeout=1),
                  {"cloud_api": SandboxSender()})
gateway.run_worker(threading.Event())
"""


def test_a_worker_killed_mid_job_leaves_the_job_to_the_next_worker(
    tmp_path: Path, fake_graph: FakeGraph
) -> None:
    (tmp_path / "slowbot.py").write_text(SLOW_BOT)
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    config = GatewayConfig(database_url=url, workers=0, lease_seconds=0.5)
    client = CloudApiClient("test-token", base_url=fake_graph.url)
    gateway = Gateway(config, CallableBackend(Recorder()), {"cloud_api": client})
    try:
        deliver(gateway, text_body("wamid.crash", "oi"))
        path = os.pathsep.join(filter(None, (str(tmp_path), os.environ.get("PYTHONPATH"))))
        environment = {**os.environ, "PYTHONPATH": path}
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url], env=environment)
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert worker.poll() is None, "the worker process died on its own"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert state_of(gateway, "wamid.crash") == "processing"

        drain(gateway, lambda: state_of(gateway, "wamid.crash") == "answered")

        row = gateway.store.job_state("wamid.crash")
        assert row is not None
        assert row["attempts"] == 2
        assert fake_graph.texts() == ["Você disse: oi"]
    finally:
        gateway.close()


def test_an_in_memory_database_works_with_worker_threads(fake_graph: FakeGraph) -> None:
    config = GatewayConfig(database_url="sqlite://", workers=2, poll_interval_seconds=0.02)
    client = CloudApiClient("test-token", base_url=fake_graph.url)
    gateway = Gateway(config, CallableBackend(Recorder()), {"cloud_api": client})
    gateway.start()
    try:
        for n in range(5):
            deliver(gateway, text_body(f"wamid.mem.{n}", f"m{n}", f"5561900000{n:03d}"))
        deadline = time.monotonic() + 10
        while gateway.stats().get("messages_answered", 0) < 5:
            assert time.monotonic() < deadline, gateway.stats()
            time.sleep(0.01)
    finally:
        gateway.close()
    assert len(fake_graph.message_requests) == 5


def test_metrics_have_the_contracted_names(make_gateway: MakeGateway, fake_rasa: FakeRasa) -> None:
    gateway = make_gateway(rasa(fake_rasa))
    deliver(gateway, text_body("wamid.metrics", "oi"))
    text = generate_latest(metrics.REGISTRY).decode()
    assert "whatsapp_queue_depth 1.0" in text
    gateway.process_available()
    text = generate_latest(metrics.REGISTRY).decode()
    for name in (
        'whatsapp_webhook_received_total{provider="cloud_api"}',
        "whatsapp_messages_duplicate_total",
        "whatsapp_messages_processed_total",
        "whatsapp_messages_failed_total",
        "whatsapp_sends_retried_total",
        "whatsapp_dead_letters_total",
        "whatsapp_send_latency_seconds_bucket",
        "whatsapp_backend_latency_seconds_bucket",
        "whatsapp_queue_depth 0.0",
    ):
        assert name in text


def test_contacts_are_masked_in_log_lines_when_asked(
    make_gateway: MakeGateway, fake_rasa: FakeRasa, caplog: pytest.LogCaptureFixture
) -> None:
    assert mask_contact("cloud_api:123:5561987654321") == "cloud_api:123:55619****4321"
    gateway = make_gateway(rasa(fake_rasa), mask_contacts=True)
    deliver(gateway, text_body("wamid.masked", "oi"))
    with caplog.at_level("INFO", logger="whatsapp_api_integration"):
        gateway.process_available()
    assert "55619****4321" in caplog.text
    assert "5561987654321" not in caplog.text.replace("+5561987654321", "")
