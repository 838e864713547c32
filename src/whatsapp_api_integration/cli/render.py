"""`whatsapp-gateway render`: bot responses on stdin, the request bodies WhatsApp would get.

    echo '[{"text": "Olá", "buttons": [{"title": "Sim", "payload": "1"}]}]' \\
        | whatsapp-gateway render --provider cloud_api --to 5561987654321

Prints a JSON array, one item per message in sending order: the Graph `/messages` body for
`cloud_api`, `{"path", "body"}` for `serpro`. Warnings and payload references go to stderr.
Uses the core only, so it works wherever the package is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from whatsapp_api_integration.core.events import PROVIDERS, Recipient
from whatsapp_api_integration.core.outbound import (
    UnsupportedMessageError,
    render,
    to_cloud_api,
    to_serpro,
)

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "render",
        help="turn a JSON list of Rasa responses (stdin) into WhatsApp request bodies",
        description=(
            "Read a JSON list of Rasa-style responses on stdin and print, as a JSON array, the "
            "request bodies they become, in sending order."
        ),
    )
    parser.add_argument("--provider", choices=PROVIDERS, default="cloud_api")
    parser.add_argument("--to", metavar="WA_ID", help="the contact's WhatsApp id (phone)")
    parser.add_argument("--user-id", metavar="BSUID", help="the contact's business-scoped user id")
    parser.add_argument("--waba-id", metavar="ID", help="SERPRO: the WhatsApp Business Account id")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"whatsapp-gateway render: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    if not args.to and not args.user_id:
        return _fail("give the contact with --to WA_ID and/or --user-id BSUID")
    recipient = Recipient(wa_id=args.to or None, user_id=args.user_id or None)
    try:
        responses = json.loads(sys.stdin.read())
    except (ValueError, UnicodeDecodeError) as error:
        return _fail(f"stdin is not JSON: {error}")
    if not isinstance(responses, list):
        return _fail(f"expected a JSON list of response objects, got {type(responses).__name__}")
    for index, response in enumerate(responses):
        if not isinstance(response, dict):
            return _fail(f"item {index} is not an object: {json.dumps(response)[:80]}")

    result = render(responses)
    bodies: list[Any] = []
    try:
        for message in result.messages:
            if args.provider == "serpro":
                request = to_serpro(message, recipient, waba_id=args.waba_id)
                bodies.append({"path": request.path, "body": request.body})
            else:
                bodies.append(to_cloud_api(message, recipient))
    except UnsupportedMessageError as error:
        return _fail(str(error))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for ref, payload in result.payload_refs.items():
        print(
            f"payload reference: {ref} = {json.dumps(payload, ensure_ascii=False)}", file=sys.stderr
        )
    json.dump(bodies, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0
