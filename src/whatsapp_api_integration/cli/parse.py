"""`whatsapp-gateway parse`: one webhook body in, one JSON line per event out.

Needs only the core, so it works wherever the package installs (Rasa 3.6's environment too).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, BinaryIO

from whatsapp_api_integration.core.contract import event_to_json
from whatsapp_api_integration.core.events import PROVIDERS, Message, Status
from whatsapp_api_integration.core.identity import backend_sender_id, contact_key
from whatsapp_api_integration.core.inbound import WebhookFormatError, parse_webhook

EXIT_MALFORMED = 2
# Keys every line has (null where they do not apply), so `jq` filters need no guards.
LINE_KEYS = ("wa_id", "contact_name", "message_type", "text", "sender", "contact_key")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "parse",
        help="parse one webhook body and print its events as JSON lines",
        description=(
            "Read one webhook body (Cloud API or SERPRO) and print one JSON object per event "
            "per line: kind (message, status, error, unknown), provider, phone_number_id, "
            "wa_id, contact_name, message_id, message_type, the backend text and the type's "
            f"data. A malformed body is reported on stderr with exit status {EXIT_MALFORMED}."
        ),
    )
    parser.add_argument(
        "file",
        nargs="?",
        default="-",
        help="file holding the body (default: standard input)",
    )
    parser.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="parse as this envelope instead of detecting it",
    )
    parser.add_argument(
        "--br-ninth-digit",
        action="store_true",
        help="add the 9th digit to Brazilian mobile numbers in the backend sender id",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    body = _read(args.file)
    try:
        events = parse_webhook(body, args.provider)
    except WebhookFormatError as error:
        print(f"whatsapp-gateway parse: {error}", file=sys.stderr)
        return EXIT_MALFORMED
    lines = []
    for event in events:
        record = event_to_json(event)
        if isinstance(event, Message):
            record["sender"] = backend_sender_id(event, br_ninth_digit=args.br_ninth_digit)
            record["contact_key"] = contact_key(event)
        elif isinstance(event, Status):
            record["wa_id"] = event.recipient_id
        for key in LINE_KEYS:
            record.setdefault(key, None)
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    _write_utf8("".join(lines))
    return 0


def _write_utf8(text: str) -> None:
    """UTF-8 whatever the terminal's encoding, so an emoji never crashes the command."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
    else:
        buffer.write(text.encode("utf-8"))
        buffer.flush()


def _read(file: str) -> bytes:
    if file == "-":
        stream: BinaryIO = sys.stdin.buffer
        return stream.read()
    with open(file, "rb") as handle:
        return handle.read()
