"""What outbound pacing costs a send (pipeline/pacing.py), on SQLite or PostgreSQL.

Runs THREADS threads that each acquire a send permission from one shared Pacer (one
process's view), PERMITS in all, with a rate high enough never to wait, and reports
microseconds per permission and database round trips per second of sending. Compare with
`--rate 0` (pacing off) and a small `--burst` (batches capped by the burst).

Usage: .venv/bin/python bench/pacing_cost.py [--url sqlite:///x.db] [--rate 100000]
       [--burst 80] [--permits 20000] [--threads 8]
One run on a shared machine: read the orders of magnitude.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import make_url

from whatsapp_api_integration.pipeline.pacing import Pacer
from whatsapp_api_integration.store import Store
from whatsapp_api_integration.store.buckets import Grant


class Counting:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.takes = 0
        self.lock = threading.Lock()

    def take_send_tokens(self, key: str, wanted: int, *, rate: float, burst: float) -> Grant:
        with self.lock:
            self.takes += 1
        return self.store.take_send_tokens(key, wanted, rate=rate, burst=burst)

    def pause_sends(self, key: str, seconds: float, *, rate: float, burst: float) -> None:
        self.store.pause_sends(key, seconds, rate=rate, burst=burst)


@contextlib.contextmanager
def scratch(url: str | None) -> Iterator[str | None]:
    """A PostgreSQL URL scoped to a schema made for this run (dropped after), so the bench
    never writes into the database's own tables; other URLs as they are."""
    if not url or not url.startswith("postgresql"):
        yield url
        return
    schema = f"pacing_bench_{uuid.uuid4().hex[:8]}"
    admin = Store(url).engine
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--rate", type=float, default=100_000)
    parser.add_argument("--burst", type=int, default=80)
    parser.add_argument("--permits", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, scratch(args.url) as scoped:
        url = scoped or f"sqlite:///{Path(folder) / 'pacing.db'}"
        store = Store(url)
        store.migrate()
        counting = Counting(store)
        pacer = Pacer(counting, rate=args.rate, burst=args.burst, sleep=lambda seconds: None)
        share = args.permits // args.threads

        def work() -> None:
            for _ in range(share):
                pacer.acquire("cloud_api:bench")

        threads = [threading.Thread(target=work) for _ in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        store.close()
    permits = share * args.threads
    print(
        f"{url.split(':')[0]}: rate {args.rate:g}/s burst {args.burst}: {permits} permits in "
        f"{elapsed:.3f}s = {elapsed / permits * 1e6:.1f} µs each; {counting.takes} database "
        f"round trips ({counting.takes / permits * 1000:.1f} per 1,000 sends; batch "
        f"{pacer.batch})"
    )


if __name__ == "__main__":
    main()
