"""The two wire formats (Graph `/messages` and SERPRO) and the Graph limit checker."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_api_integration.core import outbound
from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import (
    Choice,
    CustomMessage,
    ListMessage,
    ListSection,
    LocationRequest,
    MediaMessage,
    ReplyButtons,
    SerproRequest,
    TemplateMessage,
    TextMessage,
    UnsupportedMessageError,
    check_cloud_api,
    to_cloud_api,
    to_serpro,
)

pytestmark = pytest.mark.core

PHONE = Recipient(wa_id="5561987654321", user_id="BR.13491208655302741918")
BSUID_ONLY = Recipient(user_id="BR.13491208655302741918")
TO_PHONE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5561987654321"}
TO_BSUID = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "recipient": "BR.13491208655302741918",
}

BUTTONS = ReplyButtons(
    body="Concorda?",
    choices=(Choice("1", "Concordar"), Choice("-1", "Discordar")),
    header="Votação",
    footer="EJ",
)
LIST = ListMessage(
    body="Tema?",
    button_label="Opções",
    sections=(
        ListSection("Sociais", (Choice("s", "Saúde", "SUS e hospitais"), Choice("e", "Educação"))),
        ListSection("Outros", (Choice("o", "Outro"),)),
    ),
)


# ---- Cloud API -------------------------------------------------------------------------------


def test_text_to_a_phone() -> None:
    assert to_cloud_api(TextMessage("Olá"), PHONE) == {
        **TO_PHONE,
        "type": "text",
        "text": {"preview_url": False, "body": "Olá"},
    }


def test_to_a_bsuid_when_there_is_no_phone() -> None:
    assert to_cloud_api(TextMessage("Olá", preview_url=True), BSUID_ONLY) == {
        **TO_BSUID,
        "type": "text",
        "text": {"preview_url": True, "body": "Olá"},
    }


def test_reply_to_quotes_the_message() -> None:
    body = to_cloud_api(TextMessage("Olá"), PHONE, reply_to="wamid.ABC")
    assert body["context"] == {"message_id": "wamid.ABC"}


def test_reply_buttons_with_header_and_footer() -> None:
    assert to_cloud_api(BUTTONS, PHONE) == {
        **TO_PHONE,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Votação"},
            "body": {"text": "Concorda?"},
            "footer": {"text": "EJ"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "1", "title": "Concordar"}},
                    {"type": "reply", "reply": {"id": "-1", "title": "Discordar"}},
                ]
            },
        },
    }


def test_empty_header_and_footer_are_left_out() -> None:
    message = ReplyButtons("?", (Choice("a", "A"),), header="", footer="")
    interactive = to_cloud_api(message, PHONE)["interactive"]
    assert set(interactive) == {"type", "body", "action"}


def test_list_with_sections() -> None:
    assert to_cloud_api(LIST, PHONE) == {
        **TO_PHONE,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Tema?"},
            "action": {
                "button": "Opções",
                "sections": [
                    {
                        "title": "Sociais",
                        "rows": [
                            {"id": "s", "title": "Saúde", "description": "SUS e hospitais"},
                            {"id": "e", "title": "Educação"},
                        ],
                    },
                    {"title": "Outros", "rows": [{"id": "o", "title": "Outro"}]},
                ],
            },
        },
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            MediaMessage("image", link="https://e.example/a.png", caption="Veja"),
            {"type": "image", "image": {"link": "https://e.example/a.png", "caption": "Veja"}},
        ),
        (
            MediaMessage("document", media_id="42", filename="r.pdf"),
            {"type": "document", "document": {"id": "42", "filename": "r.pdf"}},
        ),
        (
            MediaMessage("audio", media_id="7", filename="ignored.ogg"),
            {"type": "audio", "audio": {"id": "7"}},
        ),
    ],
)
def test_media(message: MediaMessage, expected: dict[str, Any]) -> None:
    assert to_cloud_api(message, PHONE) == {**TO_PHONE, **expected}


def test_location_request() -> None:
    assert to_cloud_api(LocationRequest("Onde você está?"), PHONE) == {
        **TO_PHONE,
        "type": "interactive",
        "interactive": {
            "type": "location_request_message",
            "body": {"text": "Onde você está?"},
            "action": {"name": "send_location"},
        },
    }


def test_template() -> None:
    components = ({"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},)
    assert to_cloud_api(TemplateMessage("boas_vindas", "pt_BR", components), PHONE) == {
        **TO_PHONE,
        "type": "template",
        "template": {
            "name": "boas_vindas",
            "language": {"code": "pt_BR"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
        },
    }


def test_custom_gets_the_recipient_and_product_when_missing() -> None:
    payload = {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}
    assert to_cloud_api(CustomMessage(payload), BSUID_ONLY) == {**payload, **TO_BSUID}
    assert payload == {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}


def test_custom_keeps_its_own_recipient() -> None:
    payload = {"to": "5511999999999", "type": "text", "text": {"body": "oi"}}
    assert to_cloud_api(CustomMessage(payload), PHONE, reply_to="wamid.Q") == {
        **payload,
        "messaging_product": "whatsapp",
        "context": {"message_id": "wamid.Q"},
    }


def test_custom_is_copied_not_shared() -> None:
    payload: dict[str, Any] = {"type": "text", "text": {"body": "oi"}}
    body = to_cloud_api(CustomMessage(payload), PHONE)
    body["text"]["body"] = "changed"
    assert payload["text"]["body"] == "oi"


# ---- the checker -------------------------------------------------------------------------------


def graph(message: Any) -> dict[str, Any]:
    return to_cloud_api(message, PHONE)


@pytest.mark.parametrize(
    "message",
    [
        TextMessage("a" * 4096),
        BUTTONS,
        LIST,
        LocationRequest("?"),
        MediaMessage("image", media_id="1"),
    ],
)
def test_valid_bodies_pass(message: Any) -> None:
    assert check_cloud_api(graph(message)) == []


@pytest.mark.parametrize(
    ("message", "problems"),
    [
        (TextMessage("a" * 4097), ["text.body: 4097 characters, over the limit of 4096"]),
        (TextMessage("😀" * 2049), ["text.body: 4098 characters, over the limit of 4096"]),
        (TextMessage(" "), ["text.body: must not be empty"]),
        (
            ReplyButtons("b" * 1025, (Choice("x" * 257, "t" * 21),), header="h" * 61, footer=" "),
            [
                "interactive.body.text: 1025 characters, over the limit of 1024",
                "interactive.header.text: 61 characters, over the limit of 60",
                "interactive.footer.text: must not be empty",
                "interactive.action.buttons[0].reply.id: 257 characters, over the limit of 256",
                "interactive.action.buttons[0].reply.title: 21 characters, over the limit of 20",
            ],
        ),
        (
            ReplyButtons("?", tuple(Choice(" a", "Sim") for _ in range(4))),
            [
                "interactive.action.buttons: 4 buttons; between 1 and 3 allowed",
                *[
                    f"interactive.action.buttons[{i}].reply.id: "
                    "must not start or end with whitespace"
                    for i in range(4)
                ],
                *["interactive.action.buttons: id ' a' is repeated"] * 3,
                *["interactive.action.buttons: title 'sim' is repeated"] * 3,
            ],
        ),
        (ReplyButtons("?", ()), ["interactive.action.buttons: 0 buttons; between 1 and 3 allowed"]),
        (
            ListMessage(
                "?",
                "l" * 21,
                (
                    ListSection(None, tuple(Choice(str(n), "r" * 25, "d" * 73) for n in range(6))),
                    ListSection("s" * 25, tuple(Choice(str(n), "T") for n in range(5, 10))),
                ),
            ),
            [
                "interactive.action.button: 21 characters, over the limit of 20",
                "interactive.action.sections[0].title: "
                "required when there is more than one section",
                *[
                    problem
                    for n in range(6)
                    for problem in (
                        f"interactive.action.sections[0].rows[{n}].title: "
                        "25 characters, over the limit of 24",
                        f"interactive.action.sections[0].rows[{n}].description: "
                        "73 characters, over the limit of 72",
                    )
                ],
                "interactive.action.sections[1].title: 25 characters, over the limit of 24",
                "interactive.action.sections: 11 rows in all; at most 10 allowed",
                "interactive.action.sections: row id '5' is repeated",
            ],
        ),
        (
            ListMessage("?", "Opções", ()),
            ["interactive.action.sections: 0 sections; between 1 and 10 allowed"],
        ),
        (
            ListMessage("?", "Opções", (ListSection(None, ()),)),
            ["interactive.action.sections[0].rows: a section needs at least one row"],
        ),
        (
            ListMessage("?", "Opções", (ListSection(None, (Choice("a" * 201, "A"),)),)),
            ["interactive.action.sections[0].rows[0].id: 201 characters, over the limit of 200"],
        ),
        (
            MediaMessage("image", link="https://e.example/a.png", caption="c" * 1025),
            ["image.caption: 1025 characters, over the limit of 1024"],
        ),
    ],
)
def test_violations_are_listed(message: Any, problems: list[str]) -> None:
    assert check_cloud_api(graph(message)) == problems


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ([], ["body: expected an object, got an array"]),
        (
            {},
            [
                "messaging_product: must be 'whatsapp'",
                "to: a recipient is required (`to` or `recipient`)",
                "text: missing the 'text' object",
            ],
        ),
        ({**TO_PHONE, "type": "text", "text": "oi"}, ["text: expected an object, got a string"]),
        (
            {**TO_PHONE, "type": "audio", "audio": {"id": "1", "caption": "x"}},
            ["audio.caption: audio messages take no caption"],
        ),
        ({**TO_PHONE, "type": "image", "image": {}}, ["image: needs an `id` or a `link`"]),
        (
            {
                **TO_PHONE,
                "type": "interactive",
                "interactive": {"type": "carousel", "body": {"text": "x"}, "action": {}},
            },
            ["interactive.type: unknown interactive type 'carousel'"],
        ),
        (
            {
                **TO_PHONE,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "x"},
                    "action": {"buttons": [{"type": "url"}]},
                },
            },
            [
                "interactive.action.buttons[0].type: must be 'reply'",
                "interactive.action.buttons[0].reply: expected an object, got null",
            ],
        ),
        (
            {**TO_PHONE, "type": "template", "template": {"name": "", "language": {}}},
            [
                "template.name: must not be empty",
                "template.language.code: expected a string, got null",
            ],
        ),
        ({**TO_PHONE, "type": "reaction", "reaction": {"message_id": "x", "emoji": ""}}, []),
        ({**TO_PHONE, "type": 3}, ["type: expected a string, got a number"]),
        (
            {**TO_PHONE, "text": {"body": "x"}, "biz_opaque_callback_data": "d" * 513},
            ["biz_opaque_callback_data: 513 characters, over the limit of 512"],
        ),
    ],
)
def test_violations_of_arbitrary_bodies(body: Any, problems: list[str]) -> None:
    assert check_cloud_api(body) == problems


# ---- SERPRO ----------------------------------------------------------------------------------


def test_serpro_paths_are_constants_with_their_source() -> None:
    assert outbound.SERPRO_TEXT_PATH == "/requisicao/mensagem/texto"
    assert outbound.SERPRO_BUTTONS_PATH == "/requisicao/mensagem/interativa-botoes"
    assert outbound.SERPRO_LIST_PATH == "/requisicao/mensagem/interativa-lista"
    assert outbound.SERPRO_LOCATION_REQUEST_PATH == "/requisicao/mensagem/interativa-localizacao"
    assert outbound.SERPRO_MEDIA_PATH == "/requisicao/mensagem/media"
    assert outbound.SERPRO_TEMPLATE_PATH == "/requisicao/mensagem/template"


def test_serpro_text() -> None:
    assert to_serpro(TextMessage("Olá"), PHONE) == SerproRequest(
        "/requisicao/mensagem/texto",
        {"destinatario": "+5561987654321", "body": "Olá", "preview_url": False},
    )


def test_serpro_waba_id_and_reply_to_when_given() -> None:
    request = to_serpro(TextMessage("Olá"), PHONE, waba_id="123", reply_to="wamid.Z")
    assert request.body == {
        "destinatario": "+5561987654321",
        "body": "Olá",
        "preview_url": False,
        "wabaId": "123",
        "message_id": "wamid.Z",
    }


def test_serpro_destination_is_the_bsuid_without_a_phone() -> None:
    assert to_serpro(TextMessage("a"), BSUID_ONLY).body["destinatario"] == "BR.13491208655302741918"
    assert to_serpro(TextMessage("a"), Recipient(wa_id="+5561")).body["destinatario"] == "+5561"


def test_serpro_buttons() -> None:
    assert to_serpro(BUTTONS, PHONE) == SerproRequest(
        "/requisicao/mensagem/interativa-botoes",
        {
            "destinatario": "+5561987654321",
            "textoBody": "Concorda?",
            "buttons": [{"id": "1", "titulo": "Concordar"}, {"id": "-1", "titulo": "Discordar"}],
        },
    )


def test_serpro_list_has_a_label_and_real_section_titles() -> None:
    untitled = ListMessage("Tema?", "Opções", (ListSection(None, (Choice("s", "Saúde"),)),))
    assert to_serpro(untitled, PHONE) == SerproRequest(
        "/requisicao/mensagem/interativa-lista",
        {
            "destinatario": "+5561987654321",
            "textoBody": "Tema?",
            "button": "Opções",
            "secoes": [
                {"titulo": "Opções", "rows": [{"id": "s", "titulo": "Saúde", "descricao": ""}]}
            ],
        },
    )
    secoes = to_serpro(LIST, PHONE).body["secoes"]
    assert [s["titulo"] for s in secoes] == ["Sociais", "Outros"]
    assert secoes[0]["rows"][0] == {"id": "s", "titulo": "Saúde", "descricao": "SUS e hospitais"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            MediaMessage("image", link="https://e.example/a.png", caption="Veja"),
            {"tipoMedia": "image", "linkMedia": "https://e.example/a.png", "caption": "Veja"},
        ),
        (
            MediaMessage("document", media_id="42", filename="r.pdf"),
            {"tipoMedia": "document", "idMedia": "42", "filename": "r.pdf"},
        ),
    ],
)
def test_serpro_media(message: MediaMessage, expected: dict[str, Any]) -> None:
    assert to_serpro(message, PHONE) == SerproRequest(
        "/requisicao/mensagem/media", {"destinatario": "+5561987654321", **expected}
    )


def test_serpro_refuses_stickers() -> None:
    with pytest.raises(UnsupportedMessageError, match="sticker"):
        to_serpro(MediaMessage("sticker", media_id="1"), PHONE)


def test_serpro_location_request() -> None:
    assert to_serpro(LocationRequest("Onde?"), PHONE) == SerproRequest(
        "/requisicao/mensagem/interativa-localizacao",
        {"destinatario": "+5561987654321", "textoBody": "Onde?"},
    )


def test_serpro_template() -> None:
    template = TemplateMessage(
        "aviso",
        "pt_BR",
        (
            {
                "type": "header",
                "parameters": [
                    {
                        "type": "document",
                        "document": {"link": "https://e.example/r.pdf", "filename": "r.pdf"},
                    }
                ],
            },
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "3"}],
            },
            {"type": "button", "sub_type": "quick_reply", "index": "0"},
        ),
    )
    assert to_serpro(template, PHONE, waba_id="999") == SerproRequest(
        "/requisicao/mensagem/template",
        {
            "nomeTemplate": "aviso",
            "wabaId": "999",
            "destinatarios": ["+5561987654321"],
            "header": {"linkMedia": "https://e.example/r.pdf", "filename": "r.pdf"},
            "body": {
                "parametros": [{"tipo": "text", "valor": "Ana"}, {"tipo": "text", "valor": "3"}]
            },
        },
    )


def test_serpro_template_refuses_what_it_cannot_carry() -> None:
    currency = {"type": "body", "parameters": [{"type": "currency", "currency": {}}]}
    with pytest.raises(UnsupportedMessageError, match="only text parameters"):
        to_serpro(TemplateMessage("t", "pt_BR", (currency,)), PHONE)
    button = {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "x"}],
    }
    with pytest.raises(UnsupportedMessageError, match="no SERPRO field"):
        to_serpro(TemplateMessage("t", "pt_BR", (button,)), PHONE)


def test_serpro_custom_request_passes_through() -> None:
    custom = CustomMessage(
        {"path": "/requisicao/mensagem/texto", "body": {"body": "oi", "preview_url": True}}
    )
    assert to_serpro(custom, PHONE) == SerproRequest(
        "/requisicao/mensagem/texto",
        {"body": "oi", "preview_url": True, "destinatario": "+5561987654321"},
    )


def test_serpro_refuses_a_graph_custom_body() -> None:
    with pytest.raises(UnsupportedMessageError, match="SERPRO request"):
        to_serpro(CustomMessage({"type": "text", "text": {"body": "oi"}}), PHONE)
