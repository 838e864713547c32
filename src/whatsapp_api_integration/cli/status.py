"""`whatsapp-gateway status`: how the queue and the sends stand, from the database.

It reads the store every process shares, so one command on any machine shows the whole
deployment: messages waiting (and for how long the oldest has), jobs in flight, leases that
expired (a worker died; its job is taken back soon), dead letters, replies sent lately and each
sending number's pacing bucket.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from whatsapp_api_integration.settings import SettingsError, load_settings, mask_database_url


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "status", help="queue depth, jobs in flight, dead letters, send rate (from the database)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    parser.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.store import Store

    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1
    where = mask_database_url(settings.database_url)
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        print(
            f"DATABASE_URL: no database at {missing}: run this where the gateway runs, "
            "or set DATABASE_URL to its database",
            file=sys.stderr,
        )
        return 1
    try:
        store = Store(settings.database_url, pool_size=1)
    except Exception as error:
        print(f"DATABASE_URL: cannot open {where}: {error}", file=sys.stderr)
        return 1
    try:
        ready, detail = store.ready()
        if not ready:
            print(f"DATABASE_URL: {where} is not ready: {detail}", file=sys.stderr)
            return 1
        report = store.status_report(rate=settings.send_rate, burst=settings.send_burst)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"database": where, **report.as_json()}, ensure_ascii=False))
        return 0
    print(render(report.as_json(), where, settings.send_rate, settings.send_burst))
    return 0


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite file that does not exist (opening it would create it)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return None if Path(database).exists() else database


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def render(report: dict[str, Any], where: str, rate: float, burst: int) -> str:
    queue = report["queue"]
    lines = [
        f"Database:        {where}",
        f"Waiting:         {queue['waiting']} message(s), {queue['due']} due now, "
        f"oldest waiting {_age(queue['oldest_waiting_seconds'])}",
        f"In flight:       {report['in_flight']} job(s)",
        f"Expired leases:  {report['expired_leases']} (a worker stopped; taken back soon)",
        f"Dead letters:    {report['dead_letters']} (whatsapp-gateway dead-letters list)",
        f"Answered:        {report['answered']} message(s) in all",
        "Sent:            "
        + ", ".join(
            f"{count} in the last {key.removeprefix('last_')} ({report['send_rate'][key]:g}/s)"
            for key, count in report["sent"].items()
        ),
    ]
    for number in report["numbers"]:
        sent = ", ".join(f"{c} in {k.removeprefix('last_')}" for k, c in number["sent"].items())
        lines.append(f"  {number['provider']}:{number['phone_number_id']}: {sent}")
    pacing = f"{rate:g}/s, burst {burst}" if rate > 0 else "off (SEND_RATE=0)"
    lines.append(f"Pacing:          {pacing}")
    for bucket in report["buckets"]:
        tokens = bucket["tokens"]
        note = "" if tokens >= 0 else f" (sends queued or paused for {-tokens / rate:.1f}s)"
        if rate <= 0:
            note = ""
        lines.append(f"  {bucket['key']}: {tokens:g} token(s){note}")
    return "\n".join(lines)
