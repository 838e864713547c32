"""Quick loopback measure of the gateway: webhook ack latency and end-to-end messages/s.

Starts `whatsapp-gateway serve` (granian) in a temporary directory, in sandbox mode with the
echo bot (or with `--rasa-delay` a fake Rasa that takes that long to answer, and the fake Graph
of tests/fakes.py as the Cloud API), posts MESSAGES distinct text messages from CONCURRENCY
client threads over keep-alive connections, and reports:
  - ack latency p50 / p90 / p99 / max (time for the 200 that says "stored");
  - acks/s while posting;
  - end to end messages/s: from the first post until every message is answered.

Usage: .venv/bin/python bench/quick_ack.py [--messages 2000] [--concurrency 8] [--rasa-delay 0.5]
The server is pinned to CPU 0 and this load generator to CPU 1 when `taskset` exists.
Not a benchmark suite: one run on a shared machine; read the ratios, not the digits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))


def body(index: int) -> bytes:
    sender = f"55619{index % 500:08d}"  # 500 contacts, so per-contact order matters
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": f"wamid.bench.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": f"mensagem {index}"},
            }
        ],
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document).encode()


BARE_APP = """
from flask import Flask, request
app = Flask(__name__)
@app.get("/healthz")
def health():
    return "ok"
@app.post("/webhooks/whatsapp/webhook")
def webhook():
    request.get_data()
    return "ok"
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def answered(database: Path) -> int:
    with sqlite3.connect(database, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM inbound_messages WHERE state = 'answered'"
        ).fetchone()
    return int(row[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="server HTTP threads")
    parser.add_argument("--workers", type=int, default=8, help="job worker threads")
    parser.add_argument("--rasa-delay", type=float, default=None, help="fake Rasa delay (s)")
    parser.add_argument("--port", type=int, default=5099)
    parser.add_argument(
        "--bare", action="store_true", help="measure a bare Flask 200 under granian instead"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="quick_ack_"))
    env = {**os.environ, "WORKERS": str(args.workers), "LOG_LEVEL": "WARNING"}
    fakes: list[object] = []
    if args.rasa_delay is not None:
        from fakes import FakeGraph, FakeRasa

        graph, rasa = FakeGraph(token="bench-token"), FakeRasa(delay=args.rasa_delay)
        fakes = [graph, rasa]
        env.update(
            WPP_AUTHORIZATION_TOKEN="bench-token",
            WPP_API_BASE_URL=graph.url,
            RASA_URL=rasa.url,
            RASA_TIMEOUT="10",
        )
    command = [
        str(BIN / "whatsapp-gateway"),
        "serve",
        "--port",
        str(args.port),
        "--threads",
        str(args.threads),
    ]
    if args.bare:  # the reference: what the server itself costs, with no gateway at all
        args.workers = 0
        (folder / "bare.py").write_text(BARE_APP)
        command = [
            str(BIN / "granian"),
            "--interface",
            "wsgi",
            "--port",
            str(args.port),
            "--blocking-threads",
            str(args.threads),
            "bare:app",
        ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
        os.sched_setaffinity(0, {1})
    server = subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        bodies = [body(i) for i in range(args.messages)]
        latencies: list[float] = []
        failures: list[int] = []
        lock = threading.Lock()
        next_index = iter(range(args.messages))

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while True:
                    with lock:
                        index = next(next_index, None)
                    if index is None:
                        return
                    started = time.perf_counter()
                    response = http.post("/webhooks/whatsapp/webhook", content=bodies[index])
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                        if response.status_code != 200:
                            failures.append(response.status_code)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        posted = time.perf_counter() - started
        database = folder / "whatsapp_gateway.db"
        done = 0
        deadline = time.monotonic() + 600
        while (
            not args.bare
            and args.workers
            and answered(database) < args.messages
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        total = time.perf_counter() - started
        done = answered(database) if not args.bare else 0
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
        for fake in fakes:
            fake.close()  # type: ignore[attr-defined]
        shutil.rmtree(folder, ignore_errors=True)

    ms = [latency * 1000 for latency in latencies]
    bot = "echo (sandbox)" if args.rasa_delay is None else f"fake Rasa {args.rasa_delay}s"
    bot = "none (bare Flask 200 under granian)" if args.bare else bot
    print(
        f"bot: {bot}; {args.messages} messages, {args.concurrency} clients, "
        f"{args.threads} server threads, {args.workers} job workers"
    )
    print(
        f"ack latency ms: p50 {statistics.median(ms):.1f}  p90 {percentile(ms, 0.9):.1f}  "
        f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}"
    )
    print(f"acks/s while posting: {args.messages / posted:.0f}  (non-200: {len(failures)})")
    rate = done / total
    print(f"end to end: {done}/{args.messages} answered in {total:.2f}s = {rate:.0f} messages/s")
    complete = done == args.messages or args.bare or not args.workers
    return 0 if complete and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
