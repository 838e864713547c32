"""The fault test (issue 7, item 4): many contacts through several web and worker processes on
PostgreSQL while workers are SIGKILLed, the bot goes down and Graph fails at random.

What runs, all on loopback:
- a fresh PostgreSQL schema (one per run, dropped afterwards);
- `web_processes` x `whatsapp-gateway serve --no-worker` and `worker_processes` x
  `whatsapp-gateway worker`, with `WPP_APP_SECRET` set (every body is signed);
- `FaultyGraph`: Meta's Graph API answering 429/130429, 400/131000, a bare 500 and 503/code 2
  at random (`graph_error_rate`), recording every send it accepts (`to`, text, the wamid it gave);
- `FaultyBot`: a Rasa REST channel answering `resposta <message text>`, down (503) for
  `bot_down_seconds` from `bot_down_after` seconds into the run;
- a sender posting each contact's messages one after another (the next only after the previous
  one's 200), many contacts at once, each body to a web process picked at random; a share of
  bodies carry two consecutive messages of a contact (Meta batches), a share are posted before
  the message that precedes them in WhatsApp's timestamps (`swap_fraction`), and
  `duplicate_fraction` of bodies are delivered twice: half at the same time to another web
  process, half again a few seconds later (as Meta's retries do);
- a killer that SIGKILLs a worker (and every `kill_web_every`-th time a web process) every
  `kill_every` seconds and starts it again, until everything is drained.

What "in order" means here: a contact's messages go to the bot one at a time, in the order
the contact wrote them (WhatsApp's `timestamp`) among those waiting, and a message already
begun finishes before any other starts (DESIGN.md §10, store.py `_goes_before`). Seen from
outside, without timings: when message X arrived no later than Y (an earlier body, or earlier
in the same body; the sender never has two of one contact's new bodies in flight) and was
written before Y, X's reply must come first. When X was written first but arrived after Y
(a delivery out of order), either order is right: X first if both were waiting, Y first if Y
had begun before X arrived.

What is counted, after the queue is drained:
- lost: a message with no reply accepted by Graph;
- duplicated: extra accepted replies to one message, split into those the documented window
  explains (DESIGN.md §10: the process died after Graph accepted the send and before the store
  recorded its wamid; such a copy's wamid is absent from the store and a worker was killed
  right after Graph accepted it) and the others, which are bugs;
- out of order: replies (first copies) that came after a reply to a message accepted later;
- misrouted: a reply sent to another contact than the one who wrote the message.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy

from fakes import FakeGraph, FakeRasa, Recorded
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.store import Store

VENV_BIN = Path(sys.executable).parent
PHONE_NUMBER_ID = "106540352242922"
GRAPH_TOKEN = "fault-graph-token-8c1e77"
APP_SECRET = "fault-app-secret-5b0a4f29d1"
VERIFY_TOKEN = "fault-verify-token-3e5d"
WEBHOOK_PATH = "/webhooks/whatsapp/webhook"


@dataclass(frozen=True)
class FaultConfig:
    messages: int = 600
    contacts: int = 60
    web_processes: int = 2
    worker_processes: int = 2
    worker_threads: int = 4
    web_threads: int = 4
    duplicate_fraction: float = 0.10
    swap_fraction: float = 0.05
    batch_fraction: float = 0.05
    graph_error_rate: float = 0.10
    bot_down_after: float = 2.0
    bot_down_seconds: float = 5.0
    kill_every: tuple[float, float] = (2.0, 4.0)
    kill_web_every: int = 4  # every 4th kill hits a web process; 0 = workers only
    # JOB_LEASE_SECONDS: its heartbeat (every third of it) must outlast a busy machine's stalls
    lease_seconds: float = 10.0
    rasa_timeout: float = 5.0
    max_attempts: int = 30
    clients: int = 16
    drain_timeout: float = 900.0
    seed: int = 7
    log_level: str = "INFO"


# ---- fakes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A send Graph accepted: to whom, which text, the wamid it gave, when (time.time()), and
    which process instance sent it (each worker start has its own access token)."""

    seq: int
    to: str
    text: str
    wamid: str
    at: float
    sender: str = ""


class FaultyGraph(FakeGraph):
    """FakeGraph whose `/messages` fails at random the ways Meta's does, and remembers every
    send it accepted."""

    def __init__(self, token: str, error_rate: float, seed: int) -> None:
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self.accepted: list[Accepted] = []
        self.errors: Counter[str] = Counter()
        self._seq = itertools.count()
        super().__init__(token=token)
        _quiet(self)

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if request.method != "POST" or not request.path.endswith("/messages"):
            return super().handle(request)
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith(f"Bearer {self.token}"):
            return 401, {"error": {"message": "Invalid OAuth access token", "code": 190}}, {}
        sender = authorization.removeprefix(f"Bearer {self.token}").lstrip(".")
        with self.lock:
            roll, kind, pause = self.rng.random(), self.rng.randrange(4), self.rng.random()
        time.sleep(pause * 0.02)  # a send takes a while, so kills land mid-send too
        if roll < self.error_rate:
            answer: tuple[int, Any, dict[str, str]] = [
                (429, self.error(130429, "Rate limit hit", 429)[1], {"Retry-After": "1"}),
                (400, self.error(131000, "Something went wrong", 400)[1], {}),
                (500, b"Internal Server Error", {}),
                (503, self.error(2, "Service temporarily unavailable", 503)[1], {}),
            ][kind]
            with self.lock:
                self.errors[str(answer[0])] += 1
            return answer
        try:
            document = json.loads(request.body)
        except ValueError:
            document = None
        if not isinstance(document, dict) or not document.get("to"):
            # A sender killed mid-request leaves a cut body; Meta refuses such a request.
            with self.lock:
                self.errors["cut body"] += 1
            return 400, self.error(100, "Invalid parameter")[1], {}
        text = (document.get("text") or {}).get("body", "")
        with self.lock:
            seq = next(self._seq)
            wamid = f"wamid.graph.{seq}"
            self.accepted.append(
                Accepted(seq, str(document.get("to")), str(text), wamid, time.time(), sender)
            )
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": document.get("to"), "wa_id": document.get("to")}],
                "messages": [{"id": wamid}],
            },
            {},
        )


def _quiet(fake: FakeGraph | FakeRasa) -> None:
    """A killed worker leaves its connections half-done: no traceback on stderr for that."""
    fake.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]


class FaultyBot(FakeRasa):
    """A Rasa REST channel answering `resposta <text>`; `down` for a stretch of the run."""

    def __init__(self) -> None:
        super().__init__(delay=0.01)
        self.answer = lambda document: [
            {"recipient_id": document["sender"], "text": f"resposta {document['message']}"}
        ]
        self.calls: Counter[str] = Counter()
        _quiet(self)

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if not self.down and request.path == "/webhooks/rest/webhook":
            with self.lock:
                self.calls[str((request.json or {}).get("message"))] += 1
        return super().handle(request)


# ---- processes --------------------------------------------------------------------------------


class GatewayProcess:
    """One `whatsapp-gateway` process we can SIGKILL and start again; its log is appended to."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def instance(self) -> str:
        """This start of the process: `worker-0.3` is worker-0's third start."""
        return f"{self.name}.{self.starts}"

    def start(self) -> None:
        self.starts += 1
        env = dict(self.env)
        if self.name.startswith("worker"):  # Graph tells the senders apart by their token
            env["WPP_AUTHORIZATION_TOKEN"] = f"{GRAPH_TOKEN}.{self.instance}"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


class WebProcess(GatewayProcess):
    def __init__(self, name: str, port: int, env: dict[str, str], folder: Path, threads: int):
        command = [str(VENV_BIN / "whatsapp-gateway"), "serve", "--no-worker"]
        command += ["--port", str(port), "--threads", str(threads)]
        super().__init__(name, command, env, folder)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new, empty PostgreSQL schema for one run: the URL that uses it; dropped after."""
    schema = f"fault_{uuid.uuid4().hex[:10]}"
    admin = Store(url).engine
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sqlalchemy.engine.make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ---- the traffic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A reply the run must see: its text, the place of its message's body in its contact's
    deliveries, and the place of the message in what the contact wrote (its timestamp)."""

    text: str
    delivery: int
    written: int


@dataclass(frozen=True)
class Sent:
    contact: int
    index: int  # the message's place in its contact's WhatsApp timestamps
    wamid: str
    text: str


@dataclass
class Delivery:
    contact: int
    messages: list[Sent]
    body: bytes = b""
    duplicate: str = ""  # "", "concurrent" or "later"


def wa_id(contact: int) -> str:
    return f"55619{contact:08d}"


def build_deliveries(config: FaultConfig, run_id: str, rng: random.Random) -> list[list[Delivery]]:
    """Each contact's bodies, in the order they will be posted."""
    per_contact = [
        config.messages // config.contacts + (c < config.messages % config.contacts)
        for c in range(config.contacts)
    ]
    base = int(time.time()) - 3600
    plans: list[list[Delivery]] = []
    for contact, count in enumerate(per_contact):
        sent = [
            Sent(contact, k, f"wamid.fault.{run_id}.{contact}.{k}", f"c{contact} m{k}")
            for k in range(count)
        ]
        deliveries: list[Delivery] = []
        k = 0
        while k < count:
            take = 2 if k + 1 < count and rng.random() < config.batch_fraction else 1
            deliveries.append(Delivery(contact, sent[k : k + take]))
            k += take
        for i in range(len(deliveries) - 1):  # posted before the message WhatsApp dated earlier
            if rng.random() < config.swap_fraction:
                deliveries[i], deliveries[i + 1] = deliveries[i + 1], deliveries[i]
        for delivery in deliveries:
            delivery.body = _body(delivery.messages, base)
            if rng.random() < config.duplicate_fraction:
                delivery.duplicate = rng.choice(("concurrent", "later"))
        plans.append(deliveries)
    return plans


def _body(messages: Sequence[Sent], base: int) -> bytes:
    sender = wa_id(messages[0].contact)
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": f"Contato {messages[0].contact}"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": message.wamid,
                "timestamp": str(base + message.index),
                "type": "text",
                "text": {"body": message.text},
            }
            for message in messages
        ],
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document).encode()


@dataclass
class PostStats:
    posts: int = 0
    non_200: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Poster:
    """Posts signed bodies to the web processes, as Meta does: again until one answers 200."""

    def __init__(self, webs: Sequence[WebProcess], rng_seed: int) -> None:
        self.webs = webs
        self.stats = PostStats()
        self.local = threading.local()
        self.seed = rng_seed

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self.local, "client", None)
        if client is None:
            client = httpx.Client(timeout=30.0)
            self.local.client = client
            self.local.rng = random.Random(self.seed + threading.get_ident())
        return client

    def post(self, body: bytes, first: int | None = None) -> int:
        """Post until 200 (the first try to web process `first`, if given); which web
        process took it."""
        client = self._client()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, APP_SECRET),
        }
        for attempt in range(400):
            target: int = self.local.rng.randrange(len(self.webs))
            if first is not None and attempt == 0:
                target = first % len(self.webs)
            try:
                response = client.post(
                    self.webs[target].url + WEBHOOK_PATH, content=body, headers=headers
                )
                status = str(response.status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            with self.stats.lock:
                self.stats.posts += 1
                if status != "200":
                    self.stats.non_200[status] += 1
            if status == "200":
                return target
            time.sleep(min(1.0, 0.05 * (attempt + 1)))
        with self.stats.lock:
            self.stats.gave_up += 1
        raise RuntimeError("a body was refused 400 times")

    def close(self) -> None:
        client = getattr(self.local, "client", None)
        if client is not None:
            client.close()


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class FaultReport:
    messages: int
    contacts: int
    bodies: int
    redeliveries: int
    posts: int
    non_200_answers: dict[str, int]
    worker_kills: int
    web_kills: int
    graph_errors: dict[str, int]
    bot_down_seconds: float
    graph_accepted: int
    lost: int
    duplicated: int  # extra copies the documented window does not explain: bugs
    duplicated_in_window: int  # extra copies whose sender was SIGKILLed before writing them
    window_kill_delays: list[float]  # [min, max] of (SIGKILL - Graph's accept) for those (s)
    out_of_order: int
    misrouted: int
    unexpected_replies: int
    dead_letters: int
    jobs_taken_back: int  # jobs a killed worker held, taken back after their lease expired
    jobs_taken_from_live_workers: int  # ... from a worker never SIGKILLed: must be 0
    sends_logged: int  # "sent reply ... wamid" lines in the workers' logs (the window check)
    lease_renewals_lost: int  # live workers' heartbeats that found a lease taken (stalls)
    bot_asked_again: int  # messages the bot was asked about more than once (a kill in between)
    states: dict[str, int]
    posting_seconds: float
    drain_seconds: float  # from the last post until every message was done
    total_seconds: float
    drained: bool
    examples: dict[str, list[str]]

    @property
    def passed(self) -> bool:
        return (
            self.drained
            and self.lost == 0
            and self.duplicated == 0
            and self.out_of_order == 0
            and self.misrouted == 0
            and self.unexpected_replies == 0
            and self.jobs_taken_from_live_workers == 0
        )

    def as_json(self) -> str:
        return json.dumps({**asdict(self), "passed": self.passed}, indent=2, sort_keys=True)

    def table(self) -> str:
        rows = [
            ("messages / contacts", f"{self.messages} / {self.contacts}"),
            ("bodies posted (+ redeliveries)", f"{self.bodies} (+{self.redeliveries})"),
            (
                "HTTP posts (non-200 answers)",
                f"{self.posts} ({sum(self.non_200_answers.values())})",
            ),
            ("SIGKILLs: workers / web", f"{self.worker_kills} / {self.web_kills}"),
            ("Graph errors injected", str(sum(self.graph_errors.values()))),
            ("bot down (s)", f"{self.bot_down_seconds:g}"),
            ("replies accepted by Graph", str(self.graph_accepted)),
            ("LOST", str(self.lost)),
            ("DUPLICATED (not the window)", str(self.duplicated)),
            ("OUT OF ORDER", str(self.out_of_order)),
            ("misrouted / unexpected", f"{self.misrouted} / {self.unexpected_replies}"),
            ("duplicated in the §10 window", str(self.duplicated_in_window)),
            ("dead letters", str(self.dead_letters)),
            ("jobs taken back after a kill", str(self.jobs_taken_back)),
            ("... from a worker still alive", str(self.jobs_taken_from_live_workers)),
            ("heartbeats that found a lease lost", str(self.lease_renewals_lost)),
            ("bot asked again after a kill", str(self.bot_asked_again)),
            ("posting time (s)", f"{self.posting_seconds:.1f}"),
            ("time to drain after posting (s)", f"{self.drain_seconds:.1f}"),
            ("total (s)", f"{self.total_seconds:.1f}"),
            ("result", "PASS" if self.passed else "FAIL"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run_fault_test(
    database_url: str, config: FaultConfig, folder: Path | None = None
) -> FaultReport:
    """Run once in a fresh schema of `database_url`; the processes' logs stay in `folder`."""
    folder = folder or Path(tempfile.mkdtemp(prefix="fault_test_"))
    with fresh_schema(database_url) as url:
        return _run(url, config, folder)


def _run(url: str, config: FaultConfig, folder: Path) -> FaultReport:
    rng = random.Random(config.seed)
    run_id = uuid.uuid4().hex[:6]
    graph = FaultyGraph(GRAPH_TOKEN, config.graph_error_rate, config.seed)
    bot = FaultyBot()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WPP_", "SERPRO_", "RASA_", "DATABASE_", "WORKERS", "ANSWER_"))
    }
    env.update(
        DATABASE_URL=url,
        WPP_AUTHORIZATION_TOKEN=GRAPH_TOKEN,
        WPP_API_BASE_URL=graph.url,
        WPP_PHONE_NUMBER_IDENTIFIER=PHONE_NUMBER_ID,
        WPP_APP_SECRET=APP_SECRET,
        WPP_VERIFY_TOKEN=VERIFY_TOKEN,
        RASA_URL=bot.url,
        RASA_TIMEOUT=str(config.rasa_timeout),
        JOB_LEASE_SECONDS=str(config.lease_seconds),
        MAX_ATTEMPTS=str(config.max_attempts),
        WORKERS=str(config.worker_threads),
        LOG_LEVEL=config.log_level,
        PYTHONUNBUFFERED="1",
    )
    webs = [
        WebProcess(f"web-{i}", _free_port(), env, folder, config.web_threads)
        for i in range(config.web_processes)
    ]
    workers = [
        GatewayProcess(f"worker-{i}", [str(VENV_BIN / "whatsapp-gateway"), "worker"], env, folder)
        for i in range(config.worker_processes)
    ]
    store = Store(url)
    kills: list[tuple[float, str, int]] = []  # (when, process instance, pid)
    stop_killing = threading.Event()
    poster = Poster(webs, config.seed)
    plans = build_deliveries(config, run_id, rng)
    bodies = sum(len(plan) for plan in plans)
    redeliveries = sum(1 for plan in plans for d in plan if d.duplicate)
    started = time.monotonic()
    try:
        for process in (*webs, *workers):
            process.start()
        started = time.monotonic()
        killer = threading.Thread(
            target=_kill_loop,
            args=(config, webs, workers, kills, stop_killing, random.Random(config.seed + 1)),
            daemon=True,
        )
        killer.start()
        bot_timer = threading.Thread(target=_bot_outage, args=(bot, config), daemon=True)
        bot_timer.start()
        later: list[threading.Thread] = []
        _send_all(config, plans, poster, later)
        for thread in later:
            thread.join()
        posted = time.monotonic()
        drained = _wait_drained(store, config.messages, posted + config.drain_timeout)
        done = time.monotonic()
        stop_killing.set()
        killer.join(120)
        time.sleep(1.0)  # a straggler would show now
        bot_timer.join(0)
    finally:
        stop_killing.set()
        for process in (*workers, *webs):
            process.stop()
        poster.close()
    report = _analyse(config, plans, graph, bot, store, kills, folder)
    store.close()
    graph.close()
    bot.close()
    report.update(
        bodies=bodies,
        redeliveries=redeliveries,
        posts=poster.stats.posts,
        non_200_answers=dict(poster.stats.non_200),
        posting_seconds=posted - started,
        drain_seconds=done - posted,
        total_seconds=done - started,
        drained=drained,
    )
    return FaultReport(**report)


def _send_all(
    config: FaultConfig,
    plans: list[list[Delivery]],
    poster: Poster,
    later: list[threading.Thread],
) -> None:
    """Each client thread walks its contacts round-robin, one body per contact at a time."""
    later_lock = threading.Lock()

    def client(contacts: list[int]) -> None:
        rng = random.Random(config.seed * 1000 + contacts[0] if contacts else 0)
        queues = [list(plans[c]) for c in contacts]
        while any(queues):
            for queue in queues:
                if not queue:
                    continue
                delivery = queue.pop(0)
                if delivery.duplicate == "concurrent":
                    twin = threading.Thread(target=poster.post, args=(delivery.body, 1))
                    twin.start()
                    poster.post(delivery.body, 0)
                    twin.join()
                else:
                    poster.post(delivery.body)
                if delivery.duplicate == "later":
                    timer = threading.Timer(rng.uniform(0.5, 5.0), poster.post, (delivery.body,))
                    with later_lock:
                        later.append(timer)
                    timer.start()

    clients = max(1, min(config.clients, config.contacts))
    threads = [
        threading.Thread(target=client, args=(list(range(i, config.contacts, clients)),))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _kill_loop(
    config: FaultConfig,
    webs: list[WebProcess],
    workers: list[GatewayProcess],
    kills: list[tuple[float, str, int]],
    stop: threading.Event,
    rng: random.Random,
) -> None:
    number = 0
    while not stop.wait(rng.uniform(*config.kill_every)):
        number += 1
        if config.kill_web_every and number % config.kill_web_every == 0:
            target: GatewayProcess = webs[number // config.kill_web_every % len(webs)]
        else:
            target = workers[number % len(workers)]
        pid = target.process.pid if target.process is not None else 0
        target.kill()
        kills.append((time.time(), target.instance, pid))
        try:
            target.start()
        except RuntimeError as error:  # counted by the drain that will not come
            print(f"could not restart {target.name}: {error}", file=sys.stderr)


def _bot_outage(bot: FaultyBot, config: FaultConfig) -> None:
    time.sleep(config.bot_down_after)
    bot.down = True
    time.sleep(config.bot_down_seconds)
    bot.down = False


def _states(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text("SELECT state, count(*) FROM inbound_messages GROUP BY state")
        ).all()
    return {str(state): int(count) for state, count in rows}


def _wait_drained(store: Store, expected: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        states = _states(store)
        active = states.get("received", 0) + states.get("processing", 0)
        if sum(states.values()) >= expected and active == 0:
            return True
        time.sleep(0.5)
    return False


def _analyse(
    config: FaultConfig,
    plans: list[list[Delivery]],
    graph: FaultyGraph,
    bot: FaultyBot,
    store: Store,
    kills: list[tuple[float, str, int]],
    folder: Path,
) -> dict[str, Any]:
    expected_order = {
        wa_id(contact): [
            Expected(f"resposta {m.text}", delivery, m.index)
            for delivery, d in enumerate(plan)
            for m in d.messages
        ]
        for contact, plan in enumerate(plans)
    }
    with store.engine.connect() as connection:
        recorded = {
            str(row[0])
            for row in connection.execute(
                sqlalchemy.text("SELECT wamid FROM outbound_messages WHERE wamid IS NOT NULL")
            )
        }
        dead = int(
            connection.execute(sqlalchemy.text("SELECT count(*) FROM dead_letters")).scalar() or 0
        )
    logged = set()
    taken_back = leases_lost = taken_from_live = 0
    killed_pids = {str(pid) for _, _, pid in kills}
    for log in folder.glob("worker-*.log"):
        text = log.read_text(errors="replace")
        logged.update(SENT_LINE.findall(text))
        taken_back += text.count("whose lease expired")
        taken_from_live += sum(pid not in killed_pids for pid in TAKEN_BACK_FROM.findall(text))
        leases_lost += text.count("were no longer ours")
    with graph.lock:
        accepted = sorted(graph.accepted, key=lambda a: a.seq)
    worker_kills = {instance: at for at, instance, _ in kills if instance.startswith("worker")}
    with bot.lock:
        asked_again = sum(1 for count in bot.calls.values() if count > 1)
    return {
        "messages": config.messages,
        "contacts": config.contacts,
        "worker_kills": len(worker_kills),
        "web_kills": len(kills) - len(worker_kills),
        "graph_errors": dict(graph.errors),
        "bot_down_seconds": config.bot_down_seconds,
        "graph_accepted": len(accepted),
        "dead_letters": dead,
        "jobs_taken_back": taken_back,
        "jobs_taken_from_live_workers": taken_from_live,
        "sends_logged": len(logged),
        "lease_renewals_lost": leases_lost,
        "bot_asked_again": asked_again,
        "states": _states(store),
        **count_replies(expected_order, accepted, recorded, logged, worker_kills),
    }


# How far apart a sender's SIGKILL and Graph's accept of its unrecorded send may be: on a
# loaded machine the fake Graph serves a request late, or the worker writes its wamid late.
WINDOW_SECONDS = 5.0
# "job 12 (wamid ...) taken back from <host>:<pid>:<thread>:<id>, whose lease expired"
TAKEN_BACK_FROM = re.compile(r"taken back from [^\s:]+:(\d+):")
# A worker logs each send it survived: "sent reply 1/1 wamid <wamid> to ...".
SENT_LINE = re.compile(r"sent reply \d+/\d+ wamid (\S+) to ")


def count_replies(
    expected_order: Mapping[str, Sequence[Expected]],
    accepted: Sequence[Accepted],
    recorded: set[str],
    logged: set[str],
    worker_kills: Mapping[str, float],
) -> dict[str, Any]:
    """Lost, duplicated, out-of-order, misrouted and unexpected replies.

    `expected_order`: each contact's expected replies, with when their messages arrived and
    were written (see `Expected`); `accepted`: Graph's accepted sends in the order it accepted
    them; `recorded`: the wamids the store holds; `logged`: the wamids the workers' logs say
    were sent; `worker_kills`: when each SIGKILLed worker instance was killed.

    An extra copy of a reply is put down to the documented window (DESIGN.md §10) only when
    both hold: its wamid is neither in the store nor in any worker's log (the sender never
    wrote it down; a live worker logs every send it made), and the worker instance that sent
    it was SIGKILLed within WINDOW_SECONDS of Graph accepting it: after (it died before the
    write) or before (its request was already on its way; Graph, like Meta, still served it).
    Any other extra copy is a duplicate, a bug.

    A reply is out of order when it was accepted before the reply to a message of its contact
    that both arrived no later (an earlier body, or earlier in the same body) and was written
    earlier. A pair the contact wrote in one order and whose bodies arrived in the other may
    be answered either way (see the module's docstring).
    """
    owner = {e.text: contact for contact, items in expected_order.items() for e in items}
    copies: dict[str, list[Accepted]] = defaultdict(list)
    misrouted = unexpected = 0
    examples: dict[str, list[str]] = defaultdict(list)
    for item in accepted:
        if item.text not in owner:
            unexpected += 1
            examples["unexpected"].append(f"{item.to}: {item.text!r}")
            continue
        if owner[item.text] != item.to:
            misrouted += 1
            examples["misrouted"].append(f"{item.text!r} sent to {item.to}")
        copies[item.text].append(item)
    duplicated = in_window = 0
    window_delays: list[float] = []  # kill time - accept time, for each copy put down to it
    for text, items in copies.items():
        written = [item for item in items if item.wamid in recorded or item.wamid in logged]
        explained = [
            item
            for item in items
            if item not in written
            and abs(worker_kills.get(item.sender, math.inf) - item.at) <= WINDOW_SECONDS
        ]
        window_delays += [worker_kills[item.sender] - item.at for item in explained]
        extra = len(items) - 1
        window = min(extra, len(explained))
        in_window += window
        if extra > window:
            duplicated += extra - window
            examples["duplicated"].append(
                f"{text!r} x{len(items)}: "
                + ", ".join(
                    f"{i.wamid} by {i.sender} at {i.at:.2f} "
                    f"({'written' if i in written else 'unwritten'}; "
                    f"killed at {worker_kills.get(i.sender, 0):.2f})"
                    for i in items
                )
            )
    lost = [text for text in owner if text not in copies]
    examples["lost"] = lost[:10]
    out_of_order = 0
    for contact, expected in expected_order.items():
        # The order in which the contact's replies were first accepted by Graph.
        place: dict[str, int] = {}
        for item in accepted:
            if item.to == contact and item.text not in place:
                place[item.text] = len(place)
        for later in expected:
            if later.text not in place:
                continue  # lost, counted above
            overtaken = [
                earlier.text
                for earlier in expected
                if earlier.text in place
                and earlier.delivery <= later.delivery
                and earlier.written < later.written
                and place[earlier.text] > place[later.text]
            ]
            if overtaken:
                out_of_order += 1
                examples["out_of_order"].append(
                    f"{contact}: {later.text!r} before {', '.join(map(repr, overtaken))}"
                )
    return {
        "lost": len(lost),
        "duplicated": duplicated,
        "duplicated_in_window": in_window,
        "window_kill_delays": [
            round(min(window_delays, default=0.0), 3),
            round(max(window_delays, default=0.0), 3),
        ],
        "out_of_order": out_of_order,
        "misrouted": misrouted,
        "unexpected_replies": unexpected,
        "examples": {key: value[:10] for key, value in examples.items() if value},
    }
