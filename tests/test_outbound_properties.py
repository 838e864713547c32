"""Property tests: whatever a bot answers, what we send is valid and loses nothing.

Texts mix words, emoji (ZWJ sequences, skin tones, flags, tag sequences), combining marks,
CJK and whitespace, up to ~10,000 characters; buttons number 0-25 with arbitrary titles and
payloads (0, ints, floats, booleans, objects, duplicates, very long, empty).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.limits import utf16_len
from whatsapp_api_integration.core.outbound import (
    CustomMessage,
    ListMessage,
    MediaMessage,
    ReplyButtons,
    TextMessage,
    check_cloud_api,
    is_payload_ref,
    payload_ref,
    render,
    to_cloud_api,
    to_serpro,
)
from whatsapp_api_integration.core.text import is_boundary, shorten, split_text

pytestmark = pytest.mark.core

CONTACTS = [Recipient(wa_id="5561987654321"), Recipient(user_id="BR.13491208655302741918")]
FALLBACK, MORE = "Escolha uma opção:", "Mais opções:"

CLUSTERS = [
    "😀",
    "👍🏽",
    "👩‍💻",
    "👨‍👩‍👧‍👦",
    "🇧🇷",
    "🇺🇸",
    "❤️",
    "é",
    "ậ",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "中文",
    "\u200b",
    "שלום",
]
SEPARATORS = [" ", "  ", "\n", "\n\n", "\n \n", "\t", ". ", "! ", "? ", "… ", "。", "\r\n", ", "]
atom = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzçãé", min_size=1, max_size=12),
    st.sampled_from(CLUSTERS),
    st.sampled_from(SEPARATORS),
    st.text(max_size=8),  # anything, lone surrogates included
    st.builds(
        lambda char, n: char * n, st.sampled_from(["x", "😀", " ", "\n"]), st.integers(1, 5000)
    ),
)
# Long texts cheaply: a few atoms, repeated.
texts = st.builds(
    lambda atoms, times: "".join(atoms) * times,
    st.lists(atom, max_size=30),
    st.integers(1, 400),
).map(lambda text: text[:10_000])
short_texts = st.text(max_size=40)
payloads = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    short_texts,
    st.sampled_from(["", " ", "0", "ok", "/affirm", " padded ", payload_ref("x")]),
    st.builds(lambda c, n: c * n, st.sampled_from(["p", "😀"]), st.integers(150, 400)),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
titles = st.one_of(
    st.none(),
    st.sampled_from(
        ["Sim", "sim", "Não", "", " ", "Prefiro não dizer", "Participação social e democracia"]
    ),
    short_texts,
    st.integers(0, 3),
    texts.map(lambda text: text[:200]),
)
buttons = st.lists(
    st.fixed_dictionaries(
        {}, optional={"title": titles, "payload": payloads, "description": short_texts}
    ),
    max_size=25,
)
responses = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "text": texts,
            "buttons": buttons,
            "quick_replies": buttons,
            "image": st.sampled_from(["https://e.example/a.png", "1234", "http://e.example/b.jpg"]),
            "attachment": st.sampled_from(
                ["https://e.example/r.pdf", {"url": "https://e.example/x"}]
            ),
            "custom": st.just({"type": "text", "text": {"body": "custom"}}),
        },
    ),
    max_size=4,
)


def payload_text(value: Any) -> str | None:
    """The documented conversion of a payload to the id we send (DESIGN §8 rule 4)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def expected_values(response: dict[str, Any]) -> list[str | None]:
    """What each button should send back: its payload, or None when the title stands in."""
    return [
        payload_text(b.get("payload"))
        for b in [*response.get("buttons", []), *response.get("quick_replies", [])]
    ]


def sent_values(messages: Any, refs: Any) -> list[str]:
    values = []
    for message in messages:
        if isinstance(message, ReplyButtons):
            choices = list(message.choices)
        elif isinstance(message, ListMessage):
            choices = [row for section in message.sections for row in section.rows]
        else:
            continue
        for choice in choices:
            values.append(refs[choice.id] if is_payload_ref(choice.id) else choice.id)
    return values


def text_pieces(messages: Any) -> list[str]:
    pieces = []
    for message in messages:
        if isinstance(message, TextMessage) or (
            isinstance(message, (ReplyButtons, ListMessage))
            and message.body
            not in (
                FALLBACK,
                MORE,
            )
        ):
            pieces.append(message.body)
        elif isinstance(message, MediaMessage) and message.caption is not None:
            pieces.append(message.caption)
    return pieces


def assert_lossless(text: str, pieces: list[str]) -> None:
    """`pieces` are `text`, in order, with only whitespace left out between them."""
    position = 0
    for piece in pieces:
        while not text.startswith(piece, position):
            assert position < len(text), piece[:40]
            assert text[position].isspace(), (piece[:40], position)
            position += 1
        assert is_boundary(text, position)
        assert is_boundary(text, position + len(piece))
        position += len(piece)
    assert not text[position:].strip()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses)
def test_every_rendered_message_is_valid_and_nothing_is_lost(batch: list[dict[str, Any]]) -> None:
    result = render(batch)
    for message in result.messages:
        for contact in CONTACTS:
            assert check_cloud_api(to_cloud_api(message, contact)) == []
        if not isinstance(message, CustomMessage):
            to_serpro(message, CONTACTS[0], waba_id="1")
    assert all(is_payload_ref(ref) for ref in result.payload_refs)
    for response in batch:
        alone = render([response])
        expected = expected_values(response)
        sent = sent_values(alone.messages, alone.payload_refs)
        assert len(sent) == len(expected)  # no option dropped
        for got, want in zip(sent, expected, strict=True):
            if want is not None:
                assert got == want
        if "text" in response and not response.get("custom") and not response.get("attachment"):
            assert_lossless(response["text"], text_pieces(alone.messages))


@settings(max_examples=200, deadline=None)
@given(texts, st.sampled_from([20, 24, 60, 72, 1024, 4096]))
def test_split_text_fits_and_loses_nothing(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(utf16_len(part) <= limit and part.strip() for part in parts)
    assert_lossless(text, parts)


@settings(max_examples=200, deadline=None)
@given(texts.map(lambda text: text[:300]), st.integers(2, 80))
def test_shorten_fits_and_keeps_a_prefix(text: str, limit: int) -> None:
    short = shorten(text, limit)
    assert utf16_len(short) <= limit
    if short != text:
        prefix = short.removesuffix("…")
        assert text.startswith(prefix)
        # at a cluster boundary, unless the first cluster alone is longer than the room
        first_cluster_end = next(i for i in range(1, len(text) + 1) if is_boundary(text, i))
        assert is_boundary(text, len(prefix)) or len(prefix) < first_cluster_end


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
media_objects = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["image", "video", "audio", "sticker", "document", "file", "x"]),
        "url": st.sampled_from(["https://e.example/a.png", "ftp://x", "", "55"]),
        "id": json_values,
        "payload": st.fixed_dictionaries({}, optional={"src": json_values}),
        "filename": json_values,
        "caption": st.one_of(json_values, texts.map(lambda text: text[:2000])),
    },
)
any_response = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            ["text", "buttons", "quick_replies", "image", "attachment", "custom", "elements"]
        ),
        json_values,
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "buttons": st.lists(
                st.one_of(
                    json_values,
                    st.dictionaries(
                        st.sampled_from(["title", "payload", "description"]), json_values
                    ),
                ),
                max_size=12,
            ),
            "text": st.one_of(st.none(), texts),
            "image": media_objects,
            "attachment": media_objects,
        },
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(any_response, max_size=4))
def test_render_survives_any_json_a_backend_returns(batch: list[Any]) -> None:
    result = render(batch)
    for message in result.messages:
        if isinstance(message, CustomMessage):
            continue  # the bot's own body, sent as given
        assert check_cloud_api(to_cloud_api(message, CONTACTS[0])) == []
