"""`whatsapp-gateway db upgrade|current`: the store's migrations, run on purpose.

`serve` and `worker` already bring the schema up to date when they start (one process at a
time: PostgreSQL takes an advisory lock). These commands are for deployments that migrate as a
separate step before starting new code, and for checking where a database stands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from whatsapp_api_integration.settings import SettingsError, load_settings, mask_database_url

EXIT_NOT_CURRENT = 3


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("db", help="migrate the store or show its schema version")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser(
        "upgrade",
        help="apply every pending migration to DATABASE_URL (safe to run again)",
    )
    upgrade.add_argument(
        "--database-url", metavar="URL", help="this database instead of DATABASE_URL"
    )
    upgrade.set_defaults(func=db_upgrade)
    current = actions.add_parser(
        "current",
        help=f"show the schema version; exit status {EXIT_NOT_CURRENT} if migrations are pending",
    )
    current.add_argument(
        "--database-url", metavar="URL", help="this database instead of DATABASE_URL"
    )
    current.set_defaults(func=db_current)


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    try:
        return load_settings().database_url
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from None


def _open(url: str) -> Any:
    from whatsapp_api_integration.store import Store

    try:
        return Store(url)
    except Exception as error:  # an unknown dialect, a missing driver: said plainly
        print(f"cannot open the store {mask_database_url(url)}: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def db_upgrade(args: argparse.Namespace) -> int:
    url = _database_url(args)
    store = _open(url)
    try:
        store.migrate()
        current, description = store.ready()
    except Exception as error:
        print(f"migrating {mask_database_url(url)} failed: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{mask_database_url(url)}: {description}")
    return 0 if current else 1


def db_current(args: argparse.Namespace) -> int:
    url = _database_url(args)
    store = _open(url)
    try:
        current, description = store.ready()
    finally:
        store.close()
    print(f"{mask_database_url(url)}: {description}")
    if not current and description.startswith("database unavailable"):
        return 1
    return 0 if current else EXIT_NOT_CURRENT
