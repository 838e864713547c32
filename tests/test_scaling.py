"""Several processes on one database (DESIGN §10, issue 7): real `whatsapp-gateway serve
--no-worker` and `whatsapp-gateway worker` processes, PostgreSQL, the fake Graph and Rasa.

PostgreSQL tests read TEST_DATABASE_URL and skip, saying so, when it is unset. Each test runs
in a schema of its own. Assertions count requests; where time matters (leases, pacing) the
bounds are generous and only a broken guarantee can cross them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from fakes import FakeGraph, FakeRasa, Recorded, messages_body, text_message
from web_support import (
    VENV_BIN,
    VERIFY_TOKEN,
    ServerProcess,
    free_port,
    restore_logging,  # noqa: F401 (autouse fixture)
    settings_for,
    text_body,
    wait_until,
)
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.backends.echo import EchoBackend
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.providers.sandbox import SandboxSender
from whatsapp_api_integration.store import Store
from whatsapp_api_integration.store.listen import JobListener
from whatsapp_api_integration.store.schema import inbound_messages, webhook_bodies
from whatsapp_api_integration.web.app import create_app

pytestmark = pytest.mark.timeout(180)

WEBHOOK = "/webhooks/whatsapp/webhook"
GRAPH_TOKEN = "graph-token-for-scaling-tests"


class WatchedRasa(FakeRasa):
    """The fake Rasa, counting how many calls of one sender it holds at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.in_flight: dict[str, int] = defaultdict(int)
        self.most_at_once: dict[str, int] = defaultdict(int)
        self.watch = threading.Lock()
        super().__init__(delay)

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        sender = (request.json or {}).get("sender", "?")
        with self.watch:
            self.in_flight[sender] += 1
            self.most_at_once[sender] = max(self.most_at_once[sender], self.in_flight[sender])
        try:
            return super().handle(request)
        finally:
            with self.watch:
                self.in_flight[sender] -= 1


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    server = FakeGraph(token=GRAPH_TOKEN)
    yield server
    server.close()


def gateway_env(
    database_url: str, graph: FakeGraph, rasa: FakeRasa, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "WPP_AUTHORIZATION_TOKEN": GRAPH_TOKEN,
        "WPP_API_BASE_URL": graph.url,
        "WPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WPP_PHONE_NUMBER_IDENTIFIER": "106540352242922",
        "RASA_URL": rasa.url,
        "WORKERS": "4",
        **extra,
    }


class WorkerProcess:
    """`whatsapp-gateway worker` in its own process group, its output in a file."""

    def __init__(self, cwd: Path, env: Mapping[str, str], name: str) -> None:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("WPP_", "SERPRO_", "RASA_", "DATABASE_", "WORKERS"))
        }
        environment.update(env)
        environment["PYTHONUNBUFFERED"] = "1"
        self.log_path = cwd / f"{name}.log"
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "whatsapp-gateway"), "worker"],
            cwd=cwd,
            env=environment,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self.log_file.close()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(10)
        if not self.log_file.closed:
            self.log_file.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """The worker processes a test starts; killed at the end whatever happened."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.close()


def start_worker(workers: list[WorkerProcess], cwd: Path, env: Mapping[str, str]) -> WorkerProcess:
    worker = WorkerProcess(cwd, env, f"worker-{len(workers)}")
    workers.append(worker)
    return worker


def all_logs(workers: list[WorkerProcess]) -> str:
    return "".join(worker.log() for worker in workers)


def feeder(database_url: str) -> Gateway:
    """A gateway that only stores (as a web process would), in the test's process."""
    return Gateway(GatewayConfig(database_url=database_url, workers=0), EchoBackend(), {})


def deliver(gateway: Gateway, body: bytes) -> None:
    gateway.accept(body, {"Content-Type": "application/json"}, parse_webhook(body))


def job_row(database_url: str, wamid: str) -> dict[str, Any]:
    store = Store(database_url, pool_size=1)
    try:
        row = store.job_state(wamid)
    finally:
        store.close()
    assert row is not None, wamid
    return row


# ---- PostgreSQL: several web and worker processes ------------------------------------------


def test_two_web_and_two_worker_processes_answer_each_message_once_in_order(
    tmp_path: Path, postgres_url: str, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    rasa = WatchedRasa(delay=0.03)
    env = gateway_env(postgres_url, graph, rasa)
    contacts = [f"556199{c:07d}" for c in range(12)]
    per_contact = 5
    try:
        Store(postgres_url).migrate()
        for _ in range(2):
            start_worker(workers, tmp_path, env)
        webs = []
        for _ in range(2):
            port = free_port()
            command = [str(VENV_BIN / "whatsapp-gateway"), "serve", "--no-worker"]
            command += ["--port", str(port), "--threads", "4"]
            webs.append(ServerProcess(tmp_path, env, command=command, port=port))
        try:
            with httpx.Client(timeout=10) as client:
                for n in range(per_contact):
                    for c, contact in enumerate(contacts):
                        body = text_body(f"{c}.{n}", wamid=f"wamid.{c}.{n}", sender=contact)
                        web = webs[(c + n) % 2]
                        assert client.post(f"{web.url}{WEBHOOK}", content=body).status_code == 200
            expected = len(contacts) * per_contact
            logs = "".join(worker.log() for worker in workers)
            assert wait_until(lambda: len(graph.message_requests) >= expected, timeout=90), logs
            time.sleep(1.0)  # a duplicate, if any, would arrive now
        finally:
            for web in webs:
                web.stop()
        texts = graph.texts()
        assert len(texts) == expected  # none twice, none lost
        for c, contact in enumerate(contacts):
            to_contact = [
                body["text"]["body"] for body in graph.message_bodies if body["to"] == contact
            ]
            assert to_contact == [f"Você disse: {c}.{n}" for n in range(per_contact)]
        assert len(rasa.messages) == expected  # the bot was asked once per message
        assert max(rasa.most_at_once.values()) == 1  # one contact, one message at a time
        for worker in workers:
            assert "answered wamid" in worker.log()  # both workers shared the work
    finally:
        rasa.close()


def test_a_killed_workers_job_is_taken_back_after_its_lease(
    tmp_path: Path, postgres_url: str, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    rasa = FakeRasa(delay=3.0)
    env = gateway_env(postgres_url, graph, rasa, JOB_LEASE_SECONDS="2", WORKERS="1")
    gateway = feeder(postgres_url)
    try:
        deliver(gateway, text_body("não me perca", wamid="wamid.killed"))
        first = start_worker(workers, tmp_path, env)
        assert wait_until(lambda: len(rasa.requests) >= 1, timeout=30), first.log()
        first.signal(signal.SIGKILL)
        first.wait(10)
        assert job_row(postgres_url, "wamid.killed")["state"] == "processing"

        second = start_worker(workers, tmp_path, env)
        assert wait_until(lambda: len(graph.message_requests) >= 1, timeout=60), second.log()
        time.sleep(1.0)
        assert graph.texts() == ["Você disse: não me perca"]
        assert len(rasa.requests) == 2  # the first answer died with the first worker
        row = job_row(postgres_url, "wamid.killed")
        assert (row["state"], row["attempts"]) == ("answered", 2)
        assert "taken back" in second.log()
    finally:
        gateway.close()
        rasa.close()


def test_a_live_workers_slow_job_is_never_taken_back(
    tmp_path: Path, postgres_url: str, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    """The bot takes three leases' time; the worker's heartbeats keep the job its own, so
    the other worker, idle and looking, never takes it."""
    rasa = FakeRasa(delay=3.0)
    env = gateway_env(postgres_url, graph, rasa, JOB_LEASE_SECONDS="1", WORKERS="2")
    gateway = feeder(postgres_url)
    try:
        for _ in range(2):
            start_worker(workers, tmp_path, env)
        deliver(gateway, text_body("devagar", wamid="wamid.slow"))
        assert wait_until(lambda: len(graph.message_requests) >= 1, timeout=60), all_logs(workers)
        time.sleep(1.5)
        assert len(rasa.requests) == 1
        assert graph.texts() == ["Você disse: devagar"]
        row = job_row(postgres_url, "wamid.slow")
        assert (row["state"], row["attempts"]) == ("answered", 1)
        assert "taken back" not in all_logs(workers)
    finally:
        gateway.close()
        rasa.close()


def test_pacing_is_shared_by_two_worker_processes(
    tmp_path: Path, postgres_url: str, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    rate, burst, contacts = 10, 5, 60
    rasa = FakeRasa()
    env = gateway_env(postgres_url, graph, rasa, SEND_RATE=str(rate), SEND_BURST=str(burst))
    gateway = feeder(postgres_url)
    try:
        for start in range(0, contacts, 20):
            deliver(
                gateway,
                messages_body(
                    *(
                        text_message(f"wamid.paced.{c}", f"m{c}", f"556198{c:07d}")
                        for c in range(start, start + 20)
                    )
                ),
            )
        for _ in range(2):
            start_worker(workers, tmp_path, env)
        assert wait_until(lambda: len(graph.message_requests) >= contacts, timeout=60), all_logs(
            workers
        )
    finally:
        gateway.close()
        rasa.close()
    times = sorted(request.at for request in graph.message_requests)
    assert len(times) == contacts
    # In any one second: the burst, a second's worth, and slack for the batch each process
    # may hold (2 tokens here) and for scheduling. Unpaced, all 60 go within a fraction of it.
    most_in_a_second = max(
        sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)
    )
    assert most_in_a_second <= burst + rate + 8, most_in_a_second
    assert "answered wamid" in workers[0].log()
    assert "answered wamid" in workers[1].log()


def test_a_message_committed_after_a_later_one_waits_for_it(postgres_url: str) -> None:
    """On PostgreSQL ids are drawn before commit: a contact's message can become visible
    after a later one of the same contact was claimed. It must wait, not run beside it."""
    store = Store(postgres_url)
    try:
        store.migrate()
        contact_key = "cloud_api:106540352242922:5561911111111"

        def row(wamid: str, body_id: int) -> dict[str, Any]:
            return {
                "provider": "cloud_api",
                "wamid": wamid,
                "body_id": body_id,
                "phone_number_id": "106540352242922",
                "contact_key": contact_key,
                "contact_id": "5561911111111",
                "message_type": "text",
                "text": wamid,
                "received_at": time.time(),
                "state": "received",
                "attempts": 0,
                "available_at": time.time(),
            }

        body = {
            "received_at": time.time(),
            "outcome": "accepted",
            "headers": "{}",
            "body": b"{}",
            "body_length": 2,
            "body_sha256": "0" * 64,
            "events": 1,
        }
        with store.engine.connect() as slow:
            transaction = slow.begin()  # a web process still committing its message
            body_id = slow.execute(webhook_bodies.insert().values(**body)).inserted_primary_key
            assert body_id is not None
            slow.execute(inbound_messages.insert().values(**row("wamid.first", body_id[0])))
            with store.engine.begin() as fast:
                other_id = fast.execute(webhook_bodies.insert().values(**body)).inserted_primary_key
                assert other_id is not None
                fast.execute(inbound_messages.insert().values(**row("wamid.second", other_id[0])))
            claimed = store.claim("worker-a", lease_seconds=60)
            assert claimed is not None
            assert claimed.wamid == "wamid.second"
            transaction.commit()
        assert store.claim("worker-b", lease_seconds=60) is None  # one in flight at a time
        assert store.finish(claimed)
        after = store.claim("worker-b", lease_seconds=60)
        assert after is not None
        assert after.wamid == "wamid.first"
        with store.engine.connect() as connection:
            ids = connection.execute(
                sqlalchemy.select(inbound_messages.c.wamid).order_by(inbound_messages.c.id)
            ).scalars()
            assert list(ids) == ["wamid.first", "wamid.second"]
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'order.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def written_at(wamid: str, timestamp: int, contact: str) -> bytes:
    message = text_message(wamid, wamid, contact)
    message["timestamp"] = str(timestamp)
    return messages_body(message)


def test_messages_whose_webhooks_came_out_of_order_are_answered_in_the_order_written(
    database_url: str,
) -> None:
    gateway = feeder(database_url)
    try:
        deliver(gateway, written_at("wamid.second", 1750000200, "5561911111111"))
        deliver(gateway, written_at("wamid.first", 1750000100, "5561911111111"))
        first = gateway.store.claim("w", lease_seconds=60)
        assert first is not None
        assert first.wamid == "wamid.first"  # written first, though it arrived second
        assert gateway.store.claim("w", lease_seconds=60) is None
        assert gateway.store.finish(first)
        second = gateway.store.claim("w", lease_seconds=60)
        assert second is not None
        assert second.wamid == "wamid.second"
    finally:
        gateway.close()


def test_a_begun_message_finishes_before_an_earlier_written_one_that_came_late(
    database_url: str,
) -> None:
    """Its replies may be half sent: nothing of the contact may start before it is done."""
    gateway = feeder(database_url)
    try:
        deliver(gateway, written_at("wamid.begun", 1750000300, "5561922222222"))
        begun = gateway.store.claim("w", lease_seconds=60)
        assert begun is not None
        assert gateway.store.retry_later(begun, 0.0, "Graph said 500")
        deliver(gateway, written_at("wamid.late", 1750000100, "5561922222222"))
        again = gateway.store.claim("w", lease_seconds=60)
        assert again is not None
        assert again.wamid == "wamid.begun"
        assert gateway.store.finish(again)
        late = gateway.store.claim("w", lease_seconds=60)
        assert late is not None
        assert late.wamid == "wamid.late"
    finally:
        gateway.close()


def test_a_worker_process_hears_of_new_work_at_once(postgres_url: str) -> None:
    """Idle workers look for work every `poll_interval_seconds` (30 s here); a web process's
    NOTIFY wakes them at once, so the message is answered long before that."""
    sandbox = SandboxSender()
    answers = CallableBackend(lambda incoming: [{"text": f"ok {incoming.text}"}])
    config = GatewayConfig(database_url=postgres_url, workers=1, poll_interval_seconds=30)
    worker = Gateway(config, answers, {"cloud_api": sandbox})
    web = feeder(postgres_url)
    try:
        worker.start()
        listener = worker._listener
        assert isinstance(listener, JobListener)
        assert listener.listening.wait(10)
        time.sleep(0.2)  # the worker thread has looked once and now waits
        deliver(web, text_body("acorda", wamid="wamid.notify"))
        answered = lambda: web.store.job_state("wamid.notify")["state"] == "answered"  # type: ignore[index]  # noqa: E731
        assert wait_until(answered, timeout=10)
        assert [item["body"]["text"]["body"] for item in sandbox.outbox] == ["ok acorda"]
    finally:
        worker.close()
        web.close()


def test_readyz_on_postgresql_follows_the_database(tmp_path: Path, postgres_url: str) -> None:
    """Ready while the schema is current; 503 with the reason when it is not (a database
    restored from an old dump, or emptied); ready again once migrated."""
    app = create_app(settings_for(tmp_path, DATABASE_URL=postgres_url), start_workers=False)
    client = app.test_client()
    gateway = app.extensions["whatsapp_gateway"].gateway
    try:
        assert client.get("/readyz").status_code == 200
        with gateway.store.engine.begin() as connection:
            versions = connection.execute(sqlalchemy.text("SELECT * FROM alembic_version")).all()
            connection.execute(sqlalchemy.text("DELETE FROM alembic_version"))
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "migrations not current" in (answer.json or {})["detail"]
        with gateway.store.engine.begin() as connection:
            for (version,) in versions:
                connection.execute(
                    sqlalchemy.text("INSERT INTO alembic_version VALUES (:v)"), {"v": version}
                )
        assert client.get("/readyz").status_code == 200
    finally:
        gateway.close()


# ---- graceful stop (SQLite is enough: it is about one process) -------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


def test_sigterm_lets_the_worker_finish_its_job(
    tmp_path: Path, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    rasa = FakeRasa(delay=2.0)
    env = gateway_env(sqlite_url(tmp_path), graph, rasa, SHUTDOWN_GRACE_SECONDS="30")
    gateway = feeder(sqlite_url(tmp_path))
    try:
        deliver(gateway, text_body("termine", wamid="wamid.term"))
        worker = start_worker(workers, tmp_path, env)
        assert wait_until(lambda: len(rasa.requests) >= 1, timeout=30), worker.log()
        worker.signal(signal.SIGTERM)
        assert worker.wait(40) == 0, worker.log()
        assert graph.texts() == ["Você disse: termine"]
        assert job_row(sqlite_url(tmp_path), "wamid.term")["state"] == "answered"
    finally:
        gateway.close()
        rasa.close()


def test_sigterm_past_the_grace_period_gives_the_job_back_at_once(
    tmp_path: Path, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    """The job is released, not left to its lease (60 s here): the next worker takes it at
    once and the interrupted try does not count as an attempt."""
    rasa = FakeRasa(delay=4.0)
    env = gateway_env(
        sqlite_url(tmp_path), graph, rasa, SHUTDOWN_GRACE_SECONDS="0.5", JOB_LEASE_SECONDS="60"
    )
    gateway = feeder(sqlite_url(tmp_path))
    try:
        deliver(gateway, text_body("solte", wamid="wamid.release"))
        first = start_worker(workers, tmp_path, env)
        assert wait_until(lambda: len(rasa.requests) >= 1, timeout=30), first.log()
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0, first.log()
        row = job_row(sqlite_url(tmp_path), "wamid.release")
        assert (row["state"], row["lease_owner"], row["attempts"]) == ("received", None, 0)
        assert "released" in first.log()
        assert graph.message_requests == []  # the interrupted try sent nothing

        second = start_worker(workers, tmp_path, env)
        answered = lambda: job_row(sqlite_url(tmp_path), "wamid.release")["state"] == "answered"  # noqa: E731
        assert wait_until(answered, timeout=40), second.log()
        assert job_row(sqlite_url(tmp_path), "wamid.release")["attempts"] == 1
        assert graph.texts() == ["Você disse: solte"]
    finally:
        gateway.close()
        rasa.close()


def test_a_second_signal_gives_the_job_back_without_waiting(
    tmp_path: Path, graph: FakeGraph, workers: list[WorkerProcess]
) -> None:
    rasa = FakeRasa(delay=10.0)
    env = gateway_env(sqlite_url(tmp_path), graph, rasa, SHUTDOWN_GRACE_SECONDS="60")
    gateway = feeder(sqlite_url(tmp_path))
    try:
        deliver(gateway, text_body("pare já", wamid="wamid.twice"))
        worker = start_worker(workers, tmp_path, env)
        assert wait_until(lambda: len(rasa.requests) >= 1, timeout=30), worker.log()
        worker.signal(signal.SIGINT)
        assert wait_until(lambda: "stopping; finishing" in worker.log(), timeout=10)
        worker.signal(signal.SIGINT)
        assert worker.wait(30) == 1, worker.log()
        row = job_row(sqlite_url(tmp_path), "wamid.twice")
        assert (row["state"], row["lease_owner"], row["attempts"]) == ("received", None, 0)
        assert "given back to the queue" in worker.log()
    finally:
        gateway.close()
        rasa.close()


def test_sigterm_to_serve_finishes_the_job_in_hand(tmp_path: Path, graph: FakeGraph) -> None:
    rasa = FakeRasa(delay=2.0)
    env = gateway_env(sqlite_url(tmp_path), graph, rasa, WORKERS="1", SHUTDOWN_GRACE_SECONDS="30")
    server = ServerProcess(tmp_path, env)
    try:
        body = text_body("até logo", wamid="wamid.serve")
        assert httpx.post(f"{server.url}{WEBHOOK}", content=body, timeout=10).status_code == 200
        assert wait_until(lambda: len(rasa.requests) >= 1, timeout=30), server.log()
        os.killpg(server.process.pid, signal.SIGTERM)
        assert server.process.wait(40) == 0, server.log()
        assert graph.texts() == ["Você disse: até logo"]
        assert job_row(sqlite_url(tmp_path), "wamid.serve")["state"] == "answered"
    finally:
        server.kill()
        rasa.close()
