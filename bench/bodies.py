"""Signed Cloud API webhook bodies for the benchmark: one text message each, unique wamids.

Messages are spread over `contacts` contacts (round robin), each with a `wa_id` and a
business-scoped user id (`from_user_id` / `contacts[].user_id`, as current webhooks carry).
The text is `m<index>`: the fake Graph's recorded replies ("Você disse: m<index>") tell
which messages were answered, how often, and in which order per contact.

`write_requests` writes one line per request, `<signature>\\t<body>`, for wrk's Lua script.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "bench-app-secret"
VERIFY_TOKEN = "bench-verify-token"
ACCESS_TOKEN = "bench-access-token"
WEBHOOK_PATH = "/webhooks/whatsapp/webhook"


def wa_id(contact: int) -> str:
    return f"55619{contact:08d}"


def body(index: int, contacts: int, run: str) -> bytes:
    contact = index % contacts
    sender = wa_id(contact)
    user_id = f"BR.{9000000000 + contact}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [
            {"profile": {"name": f"Contato {contact}"}, "wa_id": sender, "user_id": user_id}
        ],
        "messages": [
            {
                "from": sender,
                "from_user_id": user_id,
                "id": f"wamid.bench.{run}.{index:08d}",
                "timestamp": "1764115200",
                "type": "text",
                "text": {"body": f"m{index}"},
            }
        ],
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign(data: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def signed_bodies(count: int, contacts: int, run: str | None = None) -> Iterator[tuple[str, bytes]]:
    run = run or uuid.uuid4().hex[:8]
    for index in range(count):
        data = body(index, contacts, run)
        yield sign(data), data


def write_requests(path: Path, count: int, contacts: int, run: str | None = None) -> Path:
    with path.open("wb") as file:
        for signature, data in signed_bodies(count, contacts, run):
            file.write(signature.encode() + b"\t" + data + b"\n")
    return path


def read_requests(path: Path) -> list[tuple[str, bytes]]:
    requests = []
    with path.open("rb") as file:
        for line in file:
            signature, _, data = line.rstrip(b"\n").partition(b"\t")
            requests.append((signature.decode(), data))
    return requests
