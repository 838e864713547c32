"""Coverage-guided fuzzing of the webhook parser with atheris (libFuzzer for Python).

The property is DESIGN §5's: whatever bytes arrive, `parse_webhook` returns events or raises
`WebhookFormatError`, and what it returns can be stored and handed to a backend (it is
JSON-serialisable). Anything else escaping is a crash that libFuzzer reports with the input.

Usage (atheris is in the `fuzz` extra; Linux x86-64 wheels for CPython 3.10 and 3.11):
  .venv/bin/pip install -e '.[fuzz]'
  mkdir -p /tmp/fuzz-corpus
  .venv/bin/python fuzz/parser_fuzz.py -atheris_runs=1000000 /tmp/fuzz-corpus tests/corpus
Seeds come from tests/corpus (libFuzzer reads every file of the folders it is given) and the
inputs it finds interesting go into the first folder: keep that one outside the repository.
A finding is written as ./crash-<sha1> (`-artifact_prefix=DIR/` to put it elsewhere).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from whatsapp_api_integration.core.contract import event_to_json, to_incoming
from whatsapp_api_integration.core.events import Message
from whatsapp_api_integration.core.inbound import WebhookFormatError, parse_webhook

PROVIDERS: tuple[Any, ...] = (None, "cloud_api", "serpro")


def test_one_input(data: bytes) -> None:
    """One fuzz input, the whole of it the body (so the seeds stay valid JSON); its length
    picks the provider argument and whether it is passed as bytes or as text."""
    mode = len(data)
    provider = PROVIDERS[mode % len(PROVIDERS)]
    source: bytes | str = data
    if mode % 2:  # as text, the way a host that decoded the body first would pass it
        source = data.decode("utf-8", errors="surrogateescape")
    try:
        events = parse_webhook(source, provider)
    except WebhookFormatError:
        return
    for event in events:
        json.dumps(event_to_json(event))
        if isinstance(event, Message):
            incoming = to_incoming(event, br_ninth_digit=bool(mode % 5 == 0))
            if incoming is not None:
                json.dumps(incoming.metadata)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
