"""DESIGN §11 through HTTP: every bad input gets its 4xx or its 200, never a 5xx, and the next
good message is still answered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from web_support import (
    CONTACT,
    cloud_document,
    message_value,
    restore_logging,  # noqa: F401  (autouse fixture)
    settings_for,
    text_body,
)
from whatsapp_api_integration.pipeline.gateway import Gateway
from whatsapp_api_integration.settings import build_gateway
from whatsapp_api_integration.web.app import create_app

WEBHOOK = "/webhooks/whatsapp/webhook"


def with_message(**changes: Any) -> bytes:
    """A text message with some fields replaced (None is sent as JSON null)."""
    value = message_value("x")
    value["messages"][0].update(changes)
    return json.dumps(cloud_document(value)).encode()


def without(field: str) -> bytes:
    value = message_value("x")
    del value["messages"][0][field]
    return json.dumps(cloud_document(value)).encode()


def nested(depth: int) -> bytes:
    return b'{"object": "whatsapp_business_account", "entry": ' + b"[" * depth + b"]" * depth + b"}"


def many_messages(count: int) -> bytes:
    value = message_value("lote")
    value["messages"] = [
        {**value["messages"][0], "id": f"wamid.batch.{i}", "from": f"55619{i:08d}"}
        for i in range(count)
    ]
    return json.dumps(cloud_document(value)).encode()


def status_of_unknown_message() -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1", "phone_number_id": "106540352242922"},
        "statuses": [
            {
                "id": "wamid.never.sent",
                "status": "delivered",
                "timestamp": "1700000000",
                "recipient_id": CONTACT,
            }
        ],
    }
    return json.dumps(cloud_document(value)).encode()


def bsuid_only() -> bytes:
    value = message_value("sem número")
    del value["messages"][0]["from"]
    value["messages"][0]["from_user_id"] = "BR.13491208655302741918"
    value["contacts"] = [{"profile": {"name": "Ana"}, "user_id": "BR.13491208655302741918"}]
    return json.dumps(cloud_document(value)).encode()


BAD_INPUTS: dict[str, bytes] = {
    "not json": b"this is not json",
    "empty body": b"",
    "invalid utf-8": b'{"object": "whatsapp_business_account", "entry": ["\xff\xfe"]}',
    "json not an object": b'"just a string"',
    "json array": b"[]",
    "object missing": b'{"entry": []}',
    "object another value": b'{"object": "instagram", "entry": []}',
    "entry not a list": b'{"object": "whatsapp_business_account", "entry": {}}',
    "changes missing": b'{"object": "whatsapp_business_account", "entry": [{"id": "1"}]}',
    "value missing": (
        b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": '
        b'[{"field": "messages"}]}]}'
    ),
    "null for a string": with_message(timestamp=None),
    "number for a string": with_message(id=12345),
    "string for a list": json.dumps(
        cloud_document({**message_value(), "messages": "not a list"})
    ).encode(),
    "empty messages": json.dumps(cloud_document({**message_value(), "messages": []})).encode(),
    "message without id": without("id"),
    "message without type": without("type"),
    "message not an object": json.dumps(
        cloud_document({**message_value(), "messages": ["hello"]})
    ).encode(),
    "unknown type": with_message(type="hologram", hologram={"x": 1}),
    "text of 100000 characters": text_body("a" * 100_000),
    "emoji rtl zero-width": text_body("👩‍👩‍👧‍👦 مرحبا \u200b\u200d\u2067x\u2069"),
    "nul bytes": text_body("a\x00b"),
    "nul byte escaped in a key": (
        b'{"object": "whatsapp_business_account", "entry": [], "\\u0000": 1}'
    ),
    "NaN": b'{"object": "whatsapp_business_account", "entry": [], "x": NaN}',
    "Infinity": b'{"object": "whatsapp_business_account", "entry": [], "x": -Infinity}',
    "lone surrogate": b'{"object": "whatsapp_business_account", "entry": ["\\ud800"]}',
    "nesting 10000 deep": nested(10_000),
    "1000 messages": many_messages(1000),
    "status for a message never sent": status_of_unknown_message(),
    "no from, only a BSUID": bsuid_only(),
}


@pytest.fixture(scope="module")
def app_and_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Gateway]]:
    settings = settings_for(tmp_path_factory.mktemp("bad"), MAX_BODY_BYTES=str(4 * 1024 * 1024))
    gateway = build_gateway(settings)
    yield create_app(settings, gateway=gateway), gateway
    gateway.close()


@pytest.fixture
def client(app_and_gateway: tuple[Any, Gateway]) -> FlaskClient:
    client: FlaskClient = app_and_gateway[0].test_client()
    return client


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_4xx_or_200_and_the_next_message_is_answered(
    client: FlaskClient, app_and_gateway: tuple[Any, Gateway], name: str
) -> None:
    response = client.post(WEBHOOK, data=BAD_INPUTS[name])
    assert response.status_code < 500, (name, response.json)
    assert response.status_code == 200 or 400 <= response.status_code < 500
    if response.status_code != 200:
        assert (response.json or {})["error"]
    gateway = app_and_gateway[1]
    gateway.process_available()

    follow_up = text_body(f"depois de {name}", sender="5561911112222")
    assert client.post(WEBHOOK, data=follow_up).status_code == 200
    gateway.process_available()
    outgoing = [
        e["body"]["text"]["body"]
        for e in gateway.conversation("5561911112222", limit=500)
        if e["direction"] == "out"
    ]
    assert outgoing[-1] == f"Você disse: depois de {name}"


def test_a_20_mib_body_gets_413(client: FlaskClient) -> None:
    body = (
        b'{"object": "whatsapp_business_account", "entry": [], "pad": "' + b"x" * (20 << 20) + b'"}'
    )
    response = client.post(WEBHOOK, data=body)
    assert response.status_code == 413


def test_a_contact_known_only_by_bsuid_is_answered(
    client: FlaskClient, app_and_gateway: tuple[Any, Gateway]
) -> None:
    client.post(WEBHOOK, data=bsuid_only())
    gateway = app_and_gateway[1]
    gateway.process_available()
    out = [e for e in gateway.conversation("BR.13491208655302741918") if e["direction"] == "out"]
    assert out
    assert out[-1]["body"]["recipient"] == "BR.13491208655302741918"


def test_1000_messages_in_one_body_are_all_stored(client: FlaskClient, tmp_path: Path) -> None:
    response = client.post(WEBHOOK, data=many_messages(1000))
    assert response.status_code == 200
    stored = response.json or {}
    assert stored["new_messages"] + stored["duplicates"] == 1000


# ---- anything at all -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
# Real keys at random places, so the parser gets past the envelope often.
KEYS = [
    "object",
    "entry",
    "changes",
    "value",
    "field",
    "messages",
    "statuses",
    "id",
    "type",
    "from",
    "text",
    "body",
    "timestamp",
    "metadata",
    "contacts",
    "errors",
    "interactive",
]
shaped = st.recursive(
    st.none()
    | st.integers()
    | st.text(max_size=10)
    | st.just("whatsapp_business_account")
    | st.just("messages")
    | st.just("text"),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(document=json_values | shaped, raw=st.binary(max_size=64))
def test_no_body_gets_a_5xx(
    app_and_gateway: tuple[Any, Gateway], document: Any, raw: bytes
) -> None:
    client = app_and_gateway[0].test_client()
    for body in (json.dumps(document).encode(), raw):
        response = client.post(WEBHOOK, data=body)
        assert response.status_code in (200, 400), (body, response.json)
