"""`whatsapp-gateway`: one console script, one module per group of subcommands.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its subcommands
and sets `func` on each (a callable taking the parsed arguments and returning an exit code).
Modules are imported lazily so `parse` and `render` work with only the core installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from whatsapp_api_integration import __version__

COMMAND_MODULES = (
    "whatsapp_api_integration.cli.parse",
    "whatsapp_api_integration.cli.render",
    "whatsapp_api_integration.cli.gateway",
    "whatsapp_api_integration.cli.db",
    "whatsapp_api_integration.cli.serpro",
    "whatsapp_api_integration.cli.status",
    "whatsapp_api_integration.cli.lint",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whatsapp-gateway",
        description="A durable gateway between WhatsApp (Cloud API or SERPRO) and a chatbot.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as error:  # an optional extra is not installed
            missing = getattr(error, "name", None) or str(error)
            if missing.startswith("whatsapp_api_integration"):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
