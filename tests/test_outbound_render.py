"""`render`: DESIGN §8's shaping rules, one test per rule, with the exact Graph bodies."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import (
    Choice,
    CustomMessage,
    ListMessage,
    ListSection,
    MediaMessage,
    RenderOptions,
    ReplyButtons,
    TextMessage,
    check_cloud_api,
    is_payload_ref,
    payload_ref,
    render,
    to_cloud_api,
)

pytestmark = pytest.mark.core

CONTACT = Recipient(wa_id="5561987654321")
ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5561987654321"}


DEFAULTS = RenderOptions()


def bodies(responses: list[Any], options: RenderOptions = DEFAULTS) -> list[dict[str, Any]]:
    result = render(responses, options)
    out = [to_cloud_api(message, CONTACT) for message in result.messages]
    for body in out:
        assert check_cloud_api(body) == [], body
    return out


def text_body(body: str) -> dict[str, Any]:
    return {**ENVELOPE, "type": "text", "text": {"preview_url": False, "body": body}}


def buttons_body(text: str, *buttons: tuple[str, str]) -> dict[str, Any]:
    return {
        **ENVELOPE,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": text},
            "action": {
                "buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in buttons]
            },
        },
    }


def list_body(text: str, *rows: dict[str, str], label: str = "Opções") -> dict[str, Any]:
    return {
        **ENVELOPE,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": text},
            "action": {"button": label, "sections": [{"rows": list(rows)}]},
        },
    }


def row(id: str, title: str, description: str | None = None) -> dict[str, str]:
    out = {"id": id, "title": title}
    if description is not None:
        out["description"] = description
    return out


# ---- rule 1: text ------------------------------------------------------------------------


def test_text_alone() -> None:
    assert bodies([{"text": "Olá!"}]) == [text_body("Olá!")]


def test_long_text_is_split_losslessly() -> None:
    first = "a" * 4000 + "."
    second = "b" * 200
    assert bodies([{"text": f"{first}\n\n{second}"}]) == [text_body(first), text_body(second)]


def test_blank_text_is_not_sent_and_warned_about() -> None:
    result = render([{"text": "  \n "}])
    assert result.messages == ()
    assert result.warnings == ("response[0].text: blank text not sent",)


def test_responses_are_rendered_in_order() -> None:
    assert bodies([{"text": "um"}, {"text": "dois"}]) == [text_body("um"), text_body("dois")]


# ---- rule 2: buttons or list -------------------------------------------------------------


def test_one_to_three_buttons_that_fit_become_reply_buttons() -> None:
    response = {
        "text": "Você concorda?",
        "buttons": [
            {"title": "Concordar", "payload": "1"},
            {"title": "Discordar", "payload": "-1"},
            {"title": "Pular", "payload": "0"},
        ],
    }
    assert bodies([response]) == [
        buttons_body("Você concorda?", ("1", "Concordar"), ("-1", "Discordar"), ("0", "Pular"))
    ]


def test_a_title_over_20_makes_a_list() -> None:
    response = {
        "text": "Qual?",
        "buttons": [{"title": "Um título de 21 letra", "payload": "a"}],
    }
    assert bodies([response]) == [list_body("Qual?", row("a", "Um título de 21 letra"))]


def test_four_to_ten_buttons_make_one_list() -> None:
    buttons = [{"title": f"Opção {n}", "payload": str(n)} for n in range(1, 5)]
    assert bodies([{"text": "Escolha", "buttons": buttons}]) == [
        list_body("Escolha", *(row(str(n), f"Opção {n}") for n in range(1, 5)))
    ]


def test_more_than_ten_make_several_lists_and_drop_nothing() -> None:
    buttons = [{"title": f"Opção {n}", "payload": str(n)} for n in range(1, 24)]
    assert bodies([{"text": "Escolha", "buttons": buttons}]) == [
        list_body("Escolha", *(row(str(n), f"Opção {n}") for n in range(1, 11))),
        list_body("Mais opções:", *(row(str(n), f"Opção {n}") for n in range(11, 21))),
        list_body("Mais opções:", *(row(str(n), f"Opção {n}") for n in range(21, 24))),
    ]


def test_the_list_texts_are_settings() -> None:
    options = RenderOptions(
        list_button_label="Ver", interactive_fallback_body="Qual?", more_options_body="Mais:"
    )
    buttons = [{"title": f"O{n}", "payload": str(n)} for n in range(11)]
    out = bodies([{"buttons": buttons}], options)
    assert out == [
        list_body("Qual?", *(row(str(n), f"O{n}") for n in range(10)), label="Ver"),
        list_body("Mais:", row("10", "O10"), label="Ver"),
    ]


def test_settings_that_break_the_limits_are_held_to_them() -> None:
    options = RenderOptions(
        list_button_label="Escolha uma das opções abaixo", interactive_fallback_body=" "
    )
    out = bodies([{"buttons": [{"title": str(n), "payload": str(n)} for n in range(4)]}], options)
    assert out[0]["interactive"]["action"]["button"] == "Escolha uma das…"
    assert out[0]["interactive"]["body"]["text"] == "Escolha uma opção:"


def test_quick_replies_behave_like_buttons() -> None:
    response = {"text": "Ok?", "quick_replies": [{"title": "Sim", "payload": "/affirm"}]}
    assert bodies([response]) == [buttons_body("Ok?", ("/affirm", "Sim"))]


def test_buttons_and_quick_replies_together_drop_nothing() -> None:
    response = {
        "text": "Ok?",
        "buttons": [{"title": "Sim", "payload": "s"}, {"title": "Não", "payload": "n"}],
        "quick_replies": [{"title": "Talvez", "payload": "t"}],
    }
    assert bodies([response]) == [buttons_body("Ok?", ("s", "Sim"), ("n", "Não"), ("t", "Talvez"))]


def test_buttons_with_a_description_become_a_list() -> None:
    response = {
        "text": "Plano?",
        "buttons": [{"title": "Básico", "payload": "b", "description": "R$ 10"}],
    }
    assert bodies([response]) == [list_body("Plano?", row("b", "Básico", "R$ 10"))]


# ---- rule 3: titles keep their meaning -----------------------------------------------------


def test_a_long_row_title_is_shortened_and_kept_whole_in_the_description() -> None:
    title = "Participação social e democracia digital"
    buttons = [{"title": title, "payload": "p"}] + [
        {"title": f"T{n}", "payload": str(n)} for n in range(3)
    ]
    out = bodies([{"text": "Tema?", "buttons": buttons}])
    assert out[0]["interactive"]["action"]["sections"][0]["rows"][0] == row(
        "p", "Participação social e…", title
    )


def test_a_description_longer_than_72_is_shortened() -> None:
    title = "palavra " * 12  # 96 characters
    out = bodies([{"buttons": [{"title": title, "payload": "p"}]}])
    rows = out[0]["interactive"]["action"]["sections"][0]["rows"]
    assert rows == [row("p", "palavra palavra palavra…", "palavra " * 8 + "palavra…")]


def test_a_shortened_title_with_its_own_description_puts_the_title_first() -> None:
    button = {"title": "Participação social e democracia", "payload": "p", "description": "Tema 1"}
    out = bodies([{"buttons": [button]}])
    rows = out[0]["interactive"]["action"]["sections"][0]["rows"]
    assert rows == [row("p", "Participação social e…", "Participação social e democracia — Tema 1")]


def test_repeated_titles_get_a_suffix() -> None:
    response = {
        "text": "?",
        "buttons": [{"title": "Sim", "payload": "a"}, {"title": "sim", "payload": "b"}],
    }
    assert bodies([response]) == [buttons_body("?", ("a", "Sim"), ("b", "sim (2)"))]


def test_repeated_titles_that_no_longer_fit_a_button_make_a_list() -> None:
    title = "Concordo com isso!"  # 18 characters: with " (2)" it no longer fits a button
    response = {"buttons": [{"title": title, "payload": "a"}, {"title": title, "payload": "b"}]}
    rows = bodies([response])[0]["interactive"]["action"]["sections"][0]["rows"]
    assert rows == [row("a", title), row("b", "Concordo com isso! (2)")]


def test_a_repeated_row_title_is_shortened_to_make_room_for_its_suffix() -> None:
    title = "Eu concordo com isso!!"  # 22 characters
    response = {"buttons": [{"title": title, "payload": "a"}, {"title": title, "payload": "b"}]}
    rows = bodies([response])[0]["interactive"]["action"]["sections"][0]["rows"]
    assert rows == [row("a", title), row("b", "Eu concordo com… (2)")]


def test_whitespace_in_titles_is_collapsed() -> None:
    response = {"text": "?", "buttons": [{"title": "  Sim,\n  claro ", "payload": "s"}]}
    assert bodies([response]) == [buttons_body("?", ("s", "Sim, claro"))]


def test_a_button_without_a_title_shows_its_payload_or_a_number() -> None:
    response = {"text": "?", "buttons": [{"payload": "sim"}, {"title": "", "payload": None}]}
    assert bodies([response]) == [buttons_body("?", ("sim", "sim"), ("Opção 2", "Opção 2"))]


# ---- rule 4: ids ----------------------------------------------------------------------------


def test_falsy_and_numeric_payloads_are_kept() -> None:
    response = {
        "text": "Gênero?",
        "buttons": [
            {"title": "Prefiro não dizer", "payload": 0},
            {"title": "Um", "payload": 1.5},
            {"title": "Falso", "payload": False},
        ],
    }
    assert bodies([response]) == [
        buttons_body("Gênero?", ("0", "Prefiro não dizer"), ("1.5", "Um"), ("false", "Falso"))
    ]


def test_no_payload_uses_the_title() -> None:
    response = {"text": "?", "buttons": [{"title": "Sim"}, {"title": "Não", "payload": ""}]}
    assert bodies([response]) == [buttons_body("?", ("Sim", "Sim"), ("Não", "Não"))]


def test_an_object_payload_is_sent_as_json() -> None:
    response = {"text": "?", "buttons": [{"title": "Sim", "payload": {"intent": "affirm"}}]}
    assert bodies([response]) == [buttons_body("?", ('{"intent":"affirm"}', "Sim"))]


def test_a_payload_over_the_button_id_limit_becomes_a_reference() -> None:
    long = "/vote" + "x" * 300
    result = render([{"text": "?", "buttons": [{"title": "Sim", "payload": long}]}])
    (message,) = result.messages
    assert isinstance(message, ReplyButtons)
    ref = message.choices[0].id
    assert ref == payload_ref(long)
    assert ref.startswith("ref:")
    assert len(ref) == 24
    assert is_payload_ref(ref)
    assert dict(result.payload_refs) == {ref: long}


def test_a_payload_of_exactly_the_limit_is_kept() -> None:
    exact = "p" * 256
    result = render([{"text": "?", "buttons": [{"title": "Sim", "payload": exact}]}])
    assert result.messages[0] == ReplyButtons("?", (Choice(exact, "Sim"),))
    assert result.payload_refs == {}


def test_list_rows_have_a_lower_id_limit() -> None:
    payload = "p" * 201
    buttons = [{"title": f"T{n}", "payload": payload if n == 0 else str(n)} for n in range(4)]
    result = render([{"buttons": buttons}])
    (message,) = result.messages
    assert isinstance(message, ListMessage)
    assert message.sections[0].rows[0].id == payload_ref(payload)
    assert dict(result.payload_refs) == {payload_ref(payload): payload}


def test_a_payload_repeated_in_one_message_gets_distinct_ids_resolving_to_it() -> None:
    buttons = [
        {"title": "Sim", "payload": "ok"},
        {"title": "Claro", "payload": "ok"},
        {"title": "Pode", "payload": "ok"},
    ]
    result = render([{"text": "?", "buttons": buttons}])
    (message,) = result.messages
    assert isinstance(message, ReplyButtons)
    assert [choice.id for choice in message.choices] == [
        "ok",
        payload_ref("ok"),
        payload_ref("ok") + ".2",
    ]
    assert dict(result.payload_refs) == {payload_ref("ok"): "ok", payload_ref("ok") + ".2": "ok"}


def test_a_payload_with_surrounding_spaces_becomes_a_reference() -> None:
    result = render([{"text": "?", "buttons": [{"title": "Sim", "payload": " sim "}]}])
    assert dict(result.payload_refs) == {payload_ref(" sim "): " sim "}


def test_a_payload_that_looks_like_a_reference_becomes_one() -> None:
    lookalike = payload_ref("something else")
    result = render([{"text": "?", "buttons": [{"title": "Sim", "payload": lookalike}]}])
    assert dict(result.payload_refs) == {payload_ref(lookalike): lookalike}


def test_references_are_stable() -> None:
    assert payload_ref("x" * 300) == payload_ref("x" * 300)
    assert payload_ref("x" * 300) != payload_ref("y" * 300)
    assert not is_payload_ref("ref:nothex")
    assert not is_payload_ref("0")


# ---- rule 5: long interactive text ---------------------------------------------------------


def test_interactive_text_over_1024_goes_first() -> None:
    text = "x" * 1025
    assert bodies([{"text": text, "buttons": [{"title": "Ok", "payload": "ok"}]}]) == [
        text_body(text),
        buttons_body("Escolha uma opção:", ("ok", "Ok")),
    ]


def test_interactive_text_over_4096_is_split_then_the_buttons_follow() -> None:
    text = "frase. " * 1000
    out = bodies([{"text": text, "buttons": [{"title": "Ok", "payload": "ok"}]}])
    assert [body["type"] for body in out] == ["text", "text", "interactive"]
    assert out[2]["interactive"]["body"]["text"] == "Escolha uma opção:"


def test_buttons_without_text_use_the_fallback_body() -> None:
    assert bodies([{"buttons": [{"title": "Ok", "payload": "ok"}]}]) == [
        buttons_body("Escolha uma opção:", ("ok", "Ok"))
    ]


def test_never_an_empty_header_footer_or_section_title() -> None:
    out = bodies(
        [{"text": "?", "buttons": [{"title": str(n), "payload": str(n)} for n in range(5)]}]
    )
    interactive = out[0]["interactive"]
    assert "header" not in interactive
    assert "footer" not in interactive
    assert "title" not in interactive["action"]["sections"][0]


# ---- rule 6: media and custom ----------------------------------------------------------------


def test_image_with_text_as_caption() -> None:
    assert bodies([{"text": "Veja", "image": "https://example.com/a.png"}]) == [
        {
            **ENVELOPE,
            "type": "image",
            "image": {"link": "https://example.com/a.png", "caption": "Veja"},
        }
    ]


def test_image_by_media_id() -> None:
    assert bodies([{"image": "1234567890"}]) == [
        {**ENVELOPE, "type": "image", "image": {"id": "1234567890"}}
    ]


def test_image_with_text_too_long_for_a_caption() -> None:
    text = "y" * 1025
    assert bodies([{"text": text, "image": "https://example.com/a.png"}]) == [
        text_body(text),
        {**ENVELOPE, "type": "image", "image": {"link": "https://example.com/a.png"}},
    ]


def test_image_with_buttons_comes_first() -> None:
    out = bodies(
        [
            {
                "text": "Gostou?",
                "image": "https://e.example/a.png",
                "buttons": [{"title": "Sim", "payload": "s"}],
            }
        ]
    )
    assert out == [
        {**ENVELOPE, "type": "image", "image": {"link": "https://e.example/a.png"}},
        buttons_body("Gostou?", ("s", "Sim")),
    ]


def test_an_image_caption_too_long_goes_first_as_text_even_with_buttons() -> None:
    caption = "c" * 1025
    image = {"url": "https://e.example/a.png", "caption": caption}
    out = bodies([{"text": "?", "image": image, "buttons": [{"title": "Ok", "payload": "ok"}]}])
    assert out == [
        text_body(caption),
        {**ENVELOPE, "type": "image", "image": {"link": "https://e.example/a.png"}},
        buttons_body("?", ("ok", "Ok")),
    ]


def test_attachment_as_a_url_is_a_document() -> None:
    url = "https://example.com/docs/Relat%C3%B3rio.pdf?v=2"
    assert bodies([{"attachment": url}]) == [
        {**ENVELOPE, "type": "document", "document": {"link": url, "filename": "Relatório.pdf"}}
    ]


@pytest.mark.parametrize(
    ("attachment", "expected"),
    [
        (
            {
                "url": "https://e.example/r.pdf",
                "filename": "Relatório.pdf",
                "caption": "Seu relatório",
            },
            {
                "type": "document",
                "document": {
                    "link": "https://e.example/r.pdf",
                    "caption": "Seu relatório",
                    "filename": "Relatório.pdf",
                },
            },
        ),
        (
            {"type": "file", "payload": {"src": "https://e.example/x"}},
            {"type": "document", "document": {"link": "https://e.example/x"}},
        ),
        (
            {"type": "video", "payload": {"url": "https://e.example/v.mp4"}},
            {"type": "video", "video": {"link": "https://e.example/v.mp4"}},
        ),
        ({"type": "audio", "id": "987"}, {"type": "audio", "audio": {"id": "987"}}),
    ],
)
def test_attachment_as_an_object(attachment: dict[str, Any], expected: dict[str, Any]) -> None:
    assert bodies([{"attachment": attachment}]) == [{**ENVELOPE, **expected}]


def test_an_attachment_with_nothing_to_send_is_warned_about() -> None:
    result = render([{"attachment": {"type": "file"}}, {"image": ""}, {"image": 5}])
    assert result.messages == ()
    assert result.warnings == (
        "response[0].attachment: no URL or media id found; ignored",
        "response[1].image: empty; ignored",
        "response[2].image: expected a URL or an object, got int; ignored",
    )


def test_text_then_attachment() -> None:
    out = bodies([{"text": "Segue", "attachment": "https://e.example/r.pdf"}])
    assert out == [
        text_body("Segue"),
        {
            **ENVELOPE,
            "type": "document",
            "document": {"link": "https://e.example/r.pdf", "filename": "r.pdf"},
        },
    ]


def test_custom_is_passed_through() -> None:
    custom = {"type": "location", "location": {"latitude": -15.8, "longitude": -47.9}}
    result = render([{"text": "Aqui:", "custom": custom}])
    assert result.messages == (TextMessage("Aqui:"), CustomMessage(custom))
    assert to_cloud_api(result.messages[1], CONTACT) == {**custom, **ENVELOPE}


def test_unknown_keys_are_warned_about_and_recipient_id_is_not() -> None:
    # backends are code we do not control: render survives what its types rule out
    responses: list[Any] = [{"recipient_id": "+5561", "text": "oi", "elements": [1]}, "solto"]
    result = render(responses)
    assert result.messages == (TextMessage("oi"),)
    assert result.warnings == (
        "response[0]: unknown key 'elements' ignored",
        "response[1]: expected an object, got str; ignored",
    )


def test_bad_values_are_warned_about() -> None:
    result = render(
        [{"text": ["a"], "buttons": "Sim", "custom": "x"}, {"buttons": [None, {"title": "Ok"}]}]
    )
    assert result.messages == (ReplyButtons("Escolha uma opção:", (Choice("Ok", "Ok"),)),)
    assert result.warnings == (
        "response[0].text: expected a string, got list; ignored",
        "response[0].buttons: expected a list, got str; ignored",
        "response[0].custom: expected an object, got str",
        "response[1].buttons[0]: expected an object, got NoneType; ignored",
    )


def test_a_numeric_text_is_sent_as_text() -> None:
    assert bodies([{"text": 42}]) == [text_body("42")]


def test_rendered_messages_are_neutral_values() -> None:
    result = render([{"text": "?", "buttons": [{"title": str(n), "payload": n} for n in range(4)]}])
    assert result.messages == (
        ListMessage(
            body="?",
            button_label="Opções",
            sections=(ListSection(None, tuple(Choice(str(n), str(n)) for n in range(4))),),
        ),
    )


def test_media_message_needs_a_source() -> None:
    with pytest.raises(ValueError, match="link or a media id"):
        MediaMessage("image")
    with pytest.raises(ValueError, match="unknown media kind"):
        MediaMessage("gif", link="https://e.example/a.gif")  # type: ignore[arg-type]
