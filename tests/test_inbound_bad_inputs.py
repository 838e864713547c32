"""DESIGN §11, the parser's share: each bad input gives WebhookFormatError or events,
never another exception, and odd content never costs the other messages of a body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from whatsapp_api_integration.core.contract import backend_text
from whatsapp_api_integration.core.events import Message, Text, Unknown
from whatsapp_api_integration.core.identity import backend_sender_id
from whatsapp_api_integration.core.inbound import (
    MAX_DEPTH,
    WebhookFormatError,
    load_json,
    parse_document,
    parse_webhook,
)

pytestmark = pytest.mark.core


def text_message(body: str = "oi", **fields: Any) -> dict[str, Any]:
    raw = {"from": "5561987654321", "id": "wamid.X", "timestamp": "1", "type": "text"}
    raw["text"] = {"body": body}  # type: ignore[assignment]
    raw.update(fields)
    return raw


def body_with(messages: Any = None, **value: Any) -> dict[str, Any]:
    if messages is not None:
        value["messages"] = messages
    value.setdefault("metadata", {"phone_number_id": "1", "display_phone_number": "2"})
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "w", "changes": [{"field": "messages", "value": value}]}],
    }


def malformed(body: bytes | str | dict[str, Any]) -> WebhookFormatError:
    raw = json.dumps(body) if isinstance(body, dict) else body
    with pytest.raises(WebhookFormatError) as caught:
        parse_webhook(raw)
    return caught.value


# ---- not JSON at all ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"not json", b"{", b'{"a": 1,}', b"{'a': 1}", b"\xef\xbb\xbf{}", b"{} {}"],
)
def test_not_json(body: bytes) -> None:
    error = malformed(body)
    assert error.path == "body"
    assert error.reason.startswith("not JSON")


@pytest.mark.parametrize("body", [b'{"a": "\xff"}', b'{"a": "\xc3"}', b"\xed\xa0\x80"])
def test_invalid_utf8(body: bytes) -> None:
    error = malformed(body)
    assert (error.path, error.reason.split(" (")[0]) == ("body", "not valid UTF-8")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_nan_and_infinity(constant: str) -> None:
    body = json.dumps(body_with([text_message()])).replace('"1"', constant)  # the timestamp
    error = malformed(body)
    assert error.path == "body"


def test_integer_with_too_many_digits() -> None:
    error = malformed('{"a": ' + "9" * 5000 + "}")
    assert error.path == "body"


def test_raw_nul_byte_is_not_json_but_an_escaped_one_is_text() -> None:
    assert malformed(b'{"a": "x\x00y"}').path == "body"
    body = json.dumps(body_with([text_message("a\u0000b")]))
    assert "\\u0000" in body
    [event] = parse_webhook(body)
    assert backend_text(event) == "a\x00b"  # type: ignore[arg-type]


def test_lone_surrogate_escape_is_rejected_with_its_path() -> None:
    body = json.dumps(body_with([text_message("x")])).replace('"x"', '"\\ud83d!"')
    error = malformed(body)
    assert error.path == "entry[0].changes[0].value.messages[0].text.body"


def test_lone_surrogate_in_a_bare_json_string() -> None:
    with pytest.raises(WebhookFormatError) as caught:
        load_json('"\\udc00"')
    assert caught.value.path == "$"
    assert load_json('"\\ud83d\\ude00"') == "😀"


def test_lone_surrogate_in_a_str_body() -> None:
    assert malformed('{"a": "\ud800"}').path == "body"


def test_a_valid_surrogate_pair_and_an_escaped_backslash_are_fine() -> None:
    body = json.dumps(body_with([text_message("😀 \\ud83d")]))  # ensure_ascii escapes 😀
    [event] = parse_webhook(body)
    assert event.data == Text("😀 \\ud83d")  # type: ignore[union-attr]


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_10000_deep(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    error = malformed(opener * 10_000 + "1" + closer * 10_000)
    assert error.path == "body"
    assert "nested deeper" in error.reason


def test_nesting_just_over_the_limit_inside_an_unknown_field() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    body = body_with([text_message()])
    body["entry"][0]["extra"] = deep
    assert "nested deeper" in malformed(body).reason
    body["entry"][0]["extra"] = deep[0][0][0][0][0][0][0][0][0][0]  # comfortably inside
    assert len(parse_webhook(json.dumps(body))) == 1


def test_the_depth_limit_is_exact_with_few_brackets_or_many() -> None:
    # A body with at most MAX_DEPTH brackets is not walked; one with more is.
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(WebhookFormatError, match="nested deeper"):
        load_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    # 111 brackets, 3 deep
    wide: list[list[list[int]]] = [[[] for _ in range(10)] for _ in range(10)]
    assert load_json(json.dumps(wide)) == wide
    padded = "[" * MAX_DEPTH + '"' + "[" * 100 + '"' + "]" * MAX_DEPTH  # brackets in a string
    assert load_json(padded) is not None


def test_duplicate_keys_are_allowed_last_wins() -> None:
    assert load_json('{"a": 1, "a": 2}') == {"a": 2}


# ---- JSON, but not a webhook -------------------------------------------------------------


@pytest.mark.parametrize("body", ["[]", "[{}]", '"text"', "42", "null", "true"])
def test_json_that_is_not_an_object(body: str) -> None:
    error = malformed(body)
    assert error.path == "$"
    assert "expected a JSON object" in error.reason


def test_object_missing_or_wrong_type() -> None:
    body = body_with([text_message()])
    del body["object"]
    assert str(malformed(body)).startswith("object: missing")
    body["object"] = 7
    assert str(malformed(body)) == "object: expected a string, got a number"


def test_object_of_another_value_is_unknown() -> None:
    body = body_with([text_message()])
    body["object"] = "page"
    [event] = parse_webhook(json.dumps(body))
    assert isinstance(event, Unknown)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("entry"), "entry: missing (expected an array)"),
        (lambda b: b.update(entry={}), "entry: expected an array, got an object"),
        (lambda b: b.update(entry="x"), "entry: expected an array, got a string"),
        (lambda b: b.update(entry=[None]), "entry[0]: expected an object, got null"),
        (lambda b: b["entry"][0].pop("changes"), "entry[0].changes: missing (expected an array)"),
        (
            lambda b: b["entry"][0].update(changes=None),
            "entry[0].changes: expected an array, got null",
        ),
        (
            lambda b: b["entry"][0].update(changes=[[]]),
            "entry[0].changes[0]: expected an object, got an array",
        ),
        (
            lambda b: b["entry"][0]["changes"][0].pop("value"),
            "entry[0].changes[0].value: missing (expected an object)",
        ),
        (
            lambda b: b["entry"][0]["changes"][0].update(value="x"),
            "entry[0].changes[0].value: expected an object, got a string",
        ),
        (
            lambda b: b["entry"][0]["changes"][0].pop("field"),
            "entry[0].changes[0].field: missing (expected a string)",
        ),
        (
            lambda b: b["entry"][0]["changes"][0].update(field=None),
            "entry[0].changes[0].field: expected a string, got null",
        ),
    ],
)
def test_broken_envelope(mutate: Any, message: str) -> None:
    body = body_with([text_message()])
    mutate(body)
    assert str(malformed(body)) == message


V = "entry[0].changes[0].value"
M = f"{V}.messages[0]"


@pytest.mark.parametrize(
    ("field", "bad", "path", "got"),
    [
        ("messages", "x", f"{V}.messages", "a string"),
        ("messages", {}, f"{V}.messages", "an object"),
        ("metadata", [], f"{V}.metadata", "an array"),
        ("contacts", "x", f"{V}.contacts", "a string"),
        ("statuses", 1, f"{V}.statuses", "a number"),
        ("errors", True, f"{V}.errors", "a boolean"),
    ],
)
def test_wrong_types_in_value(field: str, bad: Any, path: str, got: str) -> None:
    body = body_with([text_message()])
    body["entry"][0]["changes"][0]["value"][field] = bad
    error = malformed(body)
    assert (error.path, error.reason.endswith(f"got {got}")) == (path, True)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"id": None}, f"{M}.id"),
        ({"id": 5}, f"{M}.id"),
        ({"from": 5561987654321}, f"{M}.from"),
        ({"type": ["text"]}, f"{M}.type"),
        ({"timestamp": "17 June"}, f"{M}.timestamp"),
        ({"timestamp": "١٢٣"}, f"{M}.timestamp"),  # Arabic-Indic digits are not ASCII digits
        ({"timestamp": -1}, f"{M}.timestamp"),
        ({"timestamp": 1.5}, f"{M}.timestamp"),
        ({"timestamp": "9" * 30}, f"{M}.timestamp"),
        ({"text": "oi"}, f"{M}.text"),
        ({"text": {"body": 5}}, f"{M}.text.body"),
        ({"text": {"body": None}}, f"{M}.text.body"),
        ({"context": "x"}, f"{M}.context"),
        ({"context": {"forwarded": "yes"}}, f"{M}.context.forwarded"),
        ({"errors": [{"code": "x"}]}, f"{M}.errors[0].code"),
        ({"errors": [7]}, f"{M}.errors[0]"),
        ({"type": "image", "image": {"caption": []}}, f"{M}.image.caption"),
        (
            {"type": "location", "location": {"latitude": "1", "longitude": 2}},
            f"{M}.location.latitude",
        ),
        ({"type": "contacts", "contacts": {"name": "x"}}, f"{M}.contacts"),
        ({"type": "contacts", "contacts": ["x"]}, f"{M}.contacts[0]"),
        ({"type": "order", "order": {"product_items": [1]}}, f"{M}.order.product_items[0]"),
        (
            {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": "r"}},
            f"{M}.interactive.list_reply",
        ),
        (
            {"type": "edit", "edit": {"message": {"type": "text", "text": {"body": 1}}}},
            f"{M}.edit.message.text.body",
        ),
    ],
)
def test_wrong_types_at_depth(fields: dict[str, Any], path: str) -> None:
    error = malformed(body_with([text_message(**fields)]))
    assert error.path == path


def test_wrong_types_in_contacts_and_statuses() -> None:
    body = body_with([text_message()], contacts=[{"profile": {"name": 5}}])
    assert malformed(body).path == f"{V}.contacts[0].profile.name"
    body = body_with(statuses=[{"id": "wamid.S", "timestamp": "1"}])
    assert str(malformed(body)) == f"{V}.statuses[0].status: missing (expected a string)"
    body = body_with(statuses=[{"status": "read"}])
    assert malformed(body).path == f"{V}.statuses[0].id"
    body = body_with(statuses=["read"])
    assert malformed(body).path == f"{V}.statuses[0]"


def test_a_message_that_is_not_an_object_or_has_no_id() -> None:
    assert malformed(body_with(["hello"])).path == f"{M}"
    no_id = text_message()
    del no_id["id"]
    assert malformed(body_with([no_id])).path == f"{M}.id"
    assert malformed(body_with([text_message(id="")])).path == f"{M}.id"


# ---- odd content that is not malformed ---------------------------------------------------


def test_empty_messages_and_empty_value() -> None:
    assert parse_document(body_with([])) == []
    assert parse_document(body_with()) == []


def test_message_without_type_is_unknown_with_its_id() -> None:
    raw = text_message()
    del raw["type"]
    [event] = parse_document(body_with([raw]))
    assert isinstance(event, Unknown)
    assert (event.message_id, event.reason) == ("wamid.X", "message without a type")


def test_message_without_from_is_answerable_through_its_bsuid() -> None:
    raw = text_message(from_user_id="BR.1")
    del raw["from"]
    [event] = parse_document(body_with([raw]))
    assert isinstance(event, Message)
    assert event.from_ is None
    assert backend_sender_id(event) == "BR.1"


def test_unknown_type_is_unknown_and_does_not_cost_the_others() -> None:
    odd = text_message(id="wamid.ODD", type="hologram", hologram={"x": 1})
    missing = text_message(id="wamid.EMPTY", type="interactive")
    events = parse_document(
        body_with([text_message(id="wamid.A"), odd, missing, text_message(id="wamid.B")])
    )
    assert [type(e).__name__ for e in events] == ["Message", "Unknown", "Message", "Message"]
    assert events[1].message_id == "wamid.ODD"  # type: ignore[union-attr]
    assert events[1].raw["hologram"] == {"x": 1}
    assert events[2].data is None  # type: ignore[union-attr]
    assert events[3].id == "wamid.B"  # type: ignore[union-attr]


def test_text_of_100000_characters_arrives_whole() -> None:
    text = ("Lorem ipsum dolor sit amet, 😀 ção. " * 3000)[:100_000]
    [event] = parse_webhook(json.dumps(body_with([text_message(text)])))
    assert backend_text(event) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "👍🏽 👨‍👩‍👧‍👦 🇧🇷",  # skin tone, ZWJ family, flag
        "שלום עולם مرحبا",  # RTL
        "a\u200bb\u200cc\u200dd\u2060e\ufeff",  # zero-width characters
        "\u202eevil\u202c",  # bidi override
        "e\u0301 \U0010ffff",  # combining mark, last code point
    ],
)
def test_emoji_rtl_zero_width_kept_exactly(text: str) -> None:
    for ensure_ascii in (True, False):
        body = json.dumps(body_with([text_message(text)]), ensure_ascii=ensure_ascii)
        [event] = parse_webhook(body.encode("utf-8"))
        assert backend_text(event) == text  # type: ignore[arg-type]


def test_a_body_of_1000_messages() -> None:
    messages = [text_message(f"m{i}", id=f"wamid.{i}") for i in range(1000)]
    events = parse_webhook(json.dumps(body_with(messages)))
    assert [e.id for e in events] == [f"wamid.{i}" for i in range(1000)]  # type: ignore[union-attr]


def test_the_same_body_three_times_gives_equal_events() -> None:
    body = json.dumps(body_with([text_message(id=f"wamid.{i}") for i in range(3)]))
    first, second, third = (parse_webhook(body) for _ in range(3))
    assert first == second == third
    assert [e.id for e in first] == ["wamid.0", "wamid.1", "wamid.2"]  # type: ignore[union-attr]


def test_unknown_fields_are_ignored() -> None:
    raw = text_message(brand_new_field={"a": [1, 2]}, group_id="g")
    body = body_with([raw], brand_new_array=[None])
    body["entry"][0]["time"] = 1
    body["future"] = True
    [event] = parse_document(body)
    assert isinstance(event, Message)
