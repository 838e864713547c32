"""Whatever it is given, the parser returns events or raises WebhookFormatError: nothing
else escapes (DESIGN §5), and what it returns is always JSON-serialisable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whatsapp_api_integration.core.contract import event_to_json, to_incoming
from whatsapp_api_integration.core.events import Message
from whatsapp_api_integration.core.inbound import (
    WebhookFormatError,
    parse_document,
    parse_webhook,
)

pytestmark = pytest.mark.core

CORPUS = Path(__file__).parent / "corpus"
BODIES = {path.stem: json.loads(path.read_text()) for path in sorted(CORPUS.glob("*.json"))}

# Keys the parser looks at, so random objects often hit real code paths.
KEYS = st.sampled_from(
    [
        "object", "entry", "changes", "field", "value", "messages", "statuses", "errors",
        "contacts", "metadata", "phone_number_id", "messaging_product", "id", "from",
        "from_user_id", "timestamp", "type", "text", "body", "interactive", "button_reply",
        "list_reply", "nfm_reply", "edit", "message", "status", "code", "profile", "name",
        "wa_id", "user_id", "context", "location", "latitude", "longitude", "idRequisicao",
    ]
) | st.text(max_size=8)  # fmt: skip

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["whatsapp_business_account", "messages", "text", "interactive", "1749416383"]
    )
)

JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


def check(events: list[Any]) -> None:
    for event in events:
        json.dumps(event_to_json(event))
        if isinstance(event, Message):
            incoming = to_incoming(event, br_ninth_digit=True)
            if incoming is not None:
                json.dumps(incoming.metadata)


def parses_or_raises_format_error(document: Any) -> None:
    try:
        events = parse_document(document)
    except WebhookFormatError:
        return
    check(events)


@settings(max_examples=200)
@given(JSON_VALUES)
def test_any_json_value(document: Any) -> None:
    parses_or_raises_format_error(document)


@settings(max_examples=200)
@given(
    st.dictionaries(KEYS, JSON_VALUES, max_size=5).map(
        lambda d: {"object": "whatsapp_business_account", **d}
    )
)
def test_any_cloud_api_like_document(document: Any) -> None:
    parses_or_raises_format_error(document)


@settings(max_examples=200)
@given(st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_bytes(body: bytes) -> None:
    try:
        events = parse_webhook(body)
    except WebhookFormatError:
        return
    check(events)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON tree, as a tuple of keys and indexes."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copy


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    document = BODIES[draw(st.sampled_from(sorted(BODIES)))]
    path = draw(st.sampled_from(paths(document)))
    return replaced(document, path, draw(JSON_VALUES))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bodies())
def test_mutated_corpus_bodies(document: Any) -> None:
    parses_or_raises_format_error(document)
    parses_or_raises_format_error(json.loads(json.dumps(document)))


@settings(max_examples=100)
@given(
    st.sampled_from(sorted(BODIES)),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=3),
)
def test_corrupted_corpus_bytes(name: str, position: int, noise: bytes) -> None:
    body = json.dumps(BODIES[name], ensure_ascii=False).encode("utf-8")
    position %= len(body)
    try:
        events = parse_webhook(body[:position] + noise + body[position + len(noise) :])
    except WebhookFormatError:
        return
    check(events)


def test_unmutated_corpus_parses() -> None:
    for document in BODIES.values():
        check(parse_document(document))
