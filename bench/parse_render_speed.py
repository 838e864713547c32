"""How fast the pure core is on one core: parse (webhook bodies → events) and, later, render.

Run: ``.venv/bin/python bench/parse_render_speed.py [--seconds N]``. Pin it to one core for
comparable figures: ``taskset -c 1 .venv/bin/python bench/parse_render_speed.py``.

Each section is a function in SECTIONS that prints its own lines; add the render section
there.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whatsapp_api_integration.core.contract import to_incoming
from whatsapp_api_integration.core.events import Message
from whatsapp_api_integration.core.inbound import parse_webhook

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"


def measure(work: Callable[[], int], seconds: float) -> tuple[float, float]:
    """Run ``work`` (which returns how many items it did) for about ``seconds``;
    return (items per second, seconds per call)."""
    work()  # warm up
    calls = items = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        items += work()
        calls += 1
        elapsed = time.perf_counter() - start
    return items / elapsed, elapsed / calls


def batch_body(size: int) -> bytes:
    """One Cloud API body of ``size`` text messages from ``size`` contacts, as Meta batches."""
    messages: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    for i in range(size):
        wa_id = f"556198{i:07d}"
        contacts.append({"profile": {"name": f"Contato {i}"}, "wa_id": wa_id, "user_id": f"BR.{i}"})
        messages.append(
            {
                "from": wa_id,
                "from_user_id": f"BR.{i}",
                "id": f"wamid.HBgNNTU2MTk4NzY1NDMyMRUCABIYFDNB{i:012d}AA==",
                "timestamp": "1749416383",
                "type": "text",
                "text": {"body": f"Olá! Mensagem número {i} 👍"},
            }
        )
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "556140041234", "phone_number_id": "106540352242922"},
        "contacts": contacts,
        "messages": messages,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()  # ASCII with \\u escapes, as Meta signs and sends it


def parse_section(seconds: float) -> None:
    print("## parse (bytes → events; parse_webhook)")
    for size in (1, 100, 1000):
        body = batch_body(size)

        def parse_one(body: bytes = body) -> int:
            return len(parse_webhook(body))

        rate, per_call = measure(parse_one, seconds)
        print(
            f"text batch of {size:>4} ({len(body):>7} bytes): "
            f"{rate:>9,.0f} events/s, {per_call * 1000:7.3f} ms a body"
        )
    bodies = [path.read_bytes() for path in sorted(CORPUS.glob("*.json"))]
    rate, _ = measure(lambda: sum(len(parse_webhook(body)) for body in bodies), seconds)
    print(f"tests/corpus ({len(bodies)} bodies, every type): {rate:>9,.0f} events/s")

    events = parse_webhook(batch_body(1000))

    def backend_view() -> int:
        return sum(1 for e in events if isinstance(e, Message) and to_incoming(e) is not None)

    rate, _ = measure(backend_view, seconds)
    print(f"to_incoming (event → backend request):        {rate:>9,.0f} messages/s")


RENDER_CASES: dict[str, list[dict[str, Any]]] = {
    "one text": [{"recipient_id": "+5561987654321", "text": "Olá! Como posso ajudar?"}],
    "text + 3 buttons (EJ vote)": [
        {
            "text": "*Precisamos de mais ciclovias no centro.*\n O que você acha disso?\n\n3 de 12",
            "buttons": [
                {"title": "Concordar", "payload": "1"},
                {"title": "Discordar", "payload": "-1"},
                {"title": "Pular", "payload": "0"},
            ],
        }
    ],
    "12 long options (2 lists, refs)": [
        {
            "text": "Qual tema mais importa para você?",
            "buttons": [
                {
                    "title": f"Tema número {n} com um título longo",
                    "payload": "/escolher" + "x" * 250,
                }
                for n in range(12)
            ],
        }
    ],
    "10,000-character text (3 parts)": [{"text": ("Uma frase de exemplo. " * 460)[:10_000]}],
}


def render_section(seconds: float) -> None:
    from whatsapp_api_integration.core.events import Recipient
    from whatsapp_api_integration.core.outbound import render, to_cloud_api

    print("## render (Rasa responses → Graph bodies; render + to_cloud_api)")
    contact = Recipient(wa_id="5561987654321")
    for name, responses in RENDER_CASES.items():

        def render_one(responses: list[dict[str, Any]] = responses) -> int:
            for message in render(responses).messages:
                to_cloud_api(message, contact)
            return 1

        rate, per_call = measure(render_one, seconds)
        print(f"{name:<34} {rate:>9,.0f} renders/s, {per_call * 1e6:8.1f} µs a render")


SECTIONS: dict[str, Callable[[float], None]] = {"parse": parse_section, "render": render_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args.seconds)


if __name__ == "__main__":
    main()
