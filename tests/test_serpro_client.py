"""SERPRO's client over real HTTP to the loopback fake of tests/fake_serpro.py: the token (cache,
store, renewal, one re-auth on 401), every send kind, media, request status, webhooks, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from fake_serpro import CLIENT_ID, CLIENT_SECRET, WABA_ID, Clock, FakeSerpro
from fakes import closed_port_url
from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import (
    ListMessage,
    ListSection,
    LocationRequest,
    MediaMessage,
    TemplateMessage,
    render,
)
from whatsapp_api_integration.providers import SendError
from whatsapp_api_integration.providers.serpro import (
    AsyncSerproClient,
    SerproClient,
    meta_code,
    parse_token_answer,
    token_key,
)
from whatsapp_api_integration.store import Store

pytestmark = pytest.mark.timeout(60)

CONTACT = Recipient(wa_id="5561987654321")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def serpro(clock: Clock) -> Iterator[FakeSerpro]:
    server = FakeSerpro(clock=clock)
    yield server
    server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    opened.migrate()
    yield opened
    opened.close()


def client_for(server: FakeSerpro, clock: Clock, **options: Any) -> SerproClient:
    return SerproClient(
        CLIENT_ID, CLIENT_SECRET, base_url=server.url, waba_id=WABA_ID, clock=clock, **options
    )


def only(messages: Any) -> Any:
    (message,) = messages
    return message


# ---- the token ------------------------------------------------------------------------------


def test_the_token_is_fetched_once_form_encoded_and_reused(
    serpro: FakeSerpro, clock: Clock
) -> None:
    with client_for(serpro, clock) as api:
        first = api.send(CLIENT_ID, only(render([{"text": "um"}]).messages), CONTACT)
        api.send(CLIENT_ID, only(render([{"text": "dois"}]).messages), CONTACT)

    token_call = only(serpro.token_calls)
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "grant_type" not in token_call.body.decode()
    assert serpro.texts() == ["um", "dois"]
    assert first.request_id is not None
    assert first.message_id is None
    assert {c.headers["Authorization"] for c in serpro.sends} == {
        serpro.sends[0].headers["Authorization"]
    }


def test_the_token_is_renewed_before_it_expires(serpro: FakeSerpro, clock: Clock) -> None:
    """expires_in 600: renewed 60 s before the end, so SERPRO never has to say 401."""
    with client_for(serpro, clock) as api:
        api.send(CLIENT_ID, only(render([{"text": "a"}]).messages), CONTACT)
        clock.advance(530)  # 70 s left: still used
        api.send(CLIENT_ID, only(render([{"text": "b"}]).messages), CONTACT)
        assert len(serpro.token_calls) == 1
        clock.advance(20)  # 50 s left: renewed first
        api.send(CLIENT_ID, only(render([{"text": "c"}]).messages), CONTACT)

    assert len(serpro.token_calls) == 2
    assert serpro.texts() == ["a", "b", "c"]
    assert len(serpro.sends) == 3  # no 401, no second try


def test_one_401_means_one_new_token_and_one_retry(serpro: FakeSerpro, clock: Clock) -> None:
    with client_for(serpro, clock) as api:
        api.send(CLIENT_ID, only(render([{"text": "antes"}]).messages), CONTACT)
        serpro.revoke_tokens()  # SERPRO forgot it early (restart, rotation)
        result = api.send(CLIENT_ID, only(render([{"text": "depois"}]).messages), CONTACT)

    assert result.request_id
    assert len(serpro.token_calls) == 2
    depois = [c for c in serpro.sends if c.json["body"] == "depois"]
    assert len(depois) == 2  # the refused one and its single retry
    assert depois[0].headers["Authorization"] != depois[1].headers["Authorization"]


def test_a_token_of_unknown_lifetime_is_used_until_401_then_renewed_once(clock: Clock) -> None:
    """SERPRO's answer may not say when the token ends (no source shows expires_in)."""
    serpro = FakeSerpro(clock=clock, token_lifetime=300, announce_lifetime=False)
    try:
        with client_for(serpro, clock) as api:
            api.send(CLIENT_ID, only(render([{"text": "um"}]).messages), CONTACT)
            clock.advance(299)
            api.send(CLIENT_ID, only(render([{"text": "dois"}]).messages), CONTACT)
            clock.advance(2)  # expired at SERPRO; the client could not know
            api.send(CLIENT_ID, only(render([{"text": "três"}]).messages), CONTACT)
            api.send(CLIENT_ID, only(render([{"text": "quatro"}]).messages), CONTACT)
        assert len(serpro.token_calls) == 2
        assert serpro.texts() == ["um", "dois", "três", "três", "quatro"]
    finally:
        serpro.close()


def test_a_second_401_is_an_error_not_a_loop(serpro: FakeSerpro, clock: Clock) -> None:
    serpro.script(401, {"message": "Token inválido"})
    serpro.script(401, {"message": "Token inválido"})
    with client_for(serpro, clock) as api, pytest.raises(SendError) as raised:
        api.send(CLIENT_ID, only(render([{"text": "oi"}]).messages), CONTACT)

    assert raised.value.http_status == 401
    assert not raised.value.retryable
    assert len(serpro.token_calls) == 2
    assert len(serpro.sends) == 2


def test_wrong_credentials_say_which_settings_to_check(serpro: FakeSerpro, clock: Clock) -> None:
    api = SerproClient(CLIENT_ID, "wrong-secret-xyz-123", base_url=serpro.url, clock=clock)
    with api, pytest.raises(SendError) as raised:
        api.send(CLIENT_ID, only(render([{"text": "oi"}]).messages), CONTACT)
    assert "SERPRO_CLIENT_SECRET" in str(raised.value)
    assert "wrong-secret-xyz-123" not in str(raised.value)
    assert not raised.value.retryable


def test_the_token_is_shared_through_the_store(
    serpro: FakeSerpro, clock: Clock, store: Store
) -> None:
    with client_for(serpro, clock, token_store=store) as first:
        first.send(CLIENT_ID, only(render([{"text": "um"}]).messages), CONTACT)
    with client_for(serpro, clock, token_store=store) as second:
        second.send(CLIENT_ID, only(render([{"text": "dois"}]).messages), CONTACT)

    assert len(serpro.token_calls) == 1
    saved = store.provider_token(token_key(CLIENT_ID, serpro.url))
    assert saved is not None
    assert saved[1] == pytest.approx(clock() + 600 - 60)


def test_after_a_401_a_newer_token_in_the_store_is_used_instead_of_a_new_fetch(
    serpro: FakeSerpro, clock: Clock, store: Store
) -> None:
    """Process B renewed; process A's token gets 401 and takes B's, so they do not keep
    invalidating each other's tokens."""
    with client_for(serpro, clock, token_store=store) as a:
        a.send(CLIENT_ID, only(render([{"text": "a1"}]).messages), CONTACT)
        serpro.revoke_tokens()
        with client_for(serpro, clock, token_store=store) as b:
            b.send(CLIENT_ID, only(render([{"text": "b1"}]).messages), CONTACT)  # B renews
        a.send(CLIENT_ID, only(render([{"text": "a2"}]).messages), CONTACT)

    assert len(serpro.token_calls) == 2  # A's first and B's: A fetched none after its 401
    assert len([c for c in serpro.sends if c.json["body"] == "a2"]) == 2


CHILD = textwrap.dedent(
    """
    import sys
    from whatsapp_api_integration.core.events import Recipient
    from whatsapp_api_integration.core.outbound import TextMessage
    from whatsapp_api_integration.providers.serpro import SerproClient
    from whatsapp_api_integration.store import Store

    base_url, database_url, client_id, secret = sys.argv[1:5]
    store = Store(database_url)
    with SerproClient(client_id, secret, base_url=base_url, token_store=store) as api:
        api.send(client_id, TextMessage(body="do outro processo"), Recipient(wa_id="5561900000000"))
    store.close()
    """
)


def test_two_processes_share_one_token(tmp_path: Path) -> None:
    serpro = FakeSerpro(token_lifetime=3600)  # real clock: the child process has no other
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = Store(database_url)
    store.migrate()
    try:
        with SerproClient(CLIENT_ID, CLIENT_SECRET, base_url=serpro.url, token_store=store) as api:
            api.send(CLIENT_ID, only(render([{"text": "deste processo"}]).messages), CONTACT)
        subprocess.run(
            [sys.executable, "-c", CHILD, serpro.url, database_url, CLIENT_ID, CLIENT_SECRET],
            check=True,
            timeout=60,
        )
        assert serpro.texts() == ["deste processo", "do outro processo"]
        assert len(serpro.token_calls) == 1
        assert len({c.headers["Authorization"] for c in serpro.sends}) == 1
    finally:
        store.close()
        serpro.close()


def test_token_lifetime_from_expires_in_or_from_the_jwt() -> None:
    assert parse_token_answer({"access_token": "t", "expires_in": 3600}, 1000.0).renew_at == 4540.0
    assert parse_token_answer({"access_token": "t", "expires_in": "100"}, 0.0).renew_at == 80.0
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 5000}).encode()).decode().rstrip("=")
    jwt = f"eyJhbGciOiJIUzI1NiJ9.{claims}.c2ln"
    assert parse_token_answer({"access_token": jwt}, 1000.0).renew_at == 4940.0
    assert parse_token_answer({"access_token": "opaque"}, 1000.0).renew_at is None
    with pytest.raises(SendError):
        parse_token_answer({"token": "x"}, 0.0)


# ---- every send kind ------------------------------------------------------------------------


def test_every_send_kind_reaches_its_path_with_its_fields(serpro: FakeSerpro, clock: Clock) -> None:
    buttons = only(
        render([{"text": "Vota?", "buttons": [{"title": "Sim", "payload": "1"}]}]).messages
    )
    many = [{"title": f"Opção {n}", "payload": str(n)} for n in range(5)]
    as_list = only(render([{"text": "Escolha", "buttons": many}]).messages)
    sectioned = ListMessage(
        body="Qual?",
        button_label="Ver",
        sections=(ListSection(title=None, rows=as_list.sections[0].rows),),
    )
    image_by_link = MediaMessage(kind="image", link="https://x.gov.br/a.png", caption="Mapa")
    document_by_id = MediaMessage(kind="document", media_id="m-1", filename="edital.pdf")
    with client_for(serpro, clock) as api:
        for message in (
            only(render([{"text": "olá"}]).messages),
            buttons,
            as_list,
            sectioned,
            image_by_link,
            document_by_id,
            LocationRequest(body="Onde você está?"),
        ):
            api.send(CLIENT_ID, message, CONTACT, reply_to="wamid.ctx")
        api.mark_as_read("wamid.lida")

    kinds = [c.kind for c in serpro.sends]
    assert kinds == [
        "requisicao/mensagem/texto",
        "requisicao/mensagem/interativa-botoes",
        "requisicao/mensagem/interativa-lista",
        "requisicao/mensagem/interativa-lista",
        "requisicao/mensagem/media",
        "requisicao/mensagem/media",
        "requisicao/mensagem/interativa-localizacao",
    ]
    bodies = [c.json for c in serpro.sends]
    assert all(b["destinatario"] == "+5561987654321" and b["wabaId"] == WABA_ID for b in bodies)
    assert all(b["message_id"] == "wamid.ctx" for b in bodies)
    assert bodies[0]["body"] == "olá"
    assert bodies[1]["buttons"] == [{"id": "1", "titulo": "Sim"}]
    assert bodies[2]["button"] == "Opções"
    assert len(bodies[2]["secoes"][0]["rows"]) == 5
    assert bodies[3]["secoes"][0]["titulo"] == "Ver"  # never the original's "foo"
    assert (bodies[4]["tipoMedia"], bodies[4]["linkMedia"]) == ("image", "https://x.gov.br/a.png")
    assert bodies[4]["caption"] == "Mapa"
    assert bodies[5]["idMedia"] == "m-1"
    assert bodies[5]["filename"] == "edital.pdf"
    assert bodies[6]["textoBody"] == "Onde você está?"
    read = only(serpro.calls_to("requisicao/mensagem/status"))
    assert read.json == {"message_id": "wamid.lida", "status": "read"}


def test_mark_as_read_path_is_a_setting(serpro: FakeSerpro, clock: Clock) -> None:
    with client_for(serpro, clock, mark_read_path="requisicao/informacao-de-leitura") as api:
        api.mark_as_read("wamid.1")
    assert only(serpro.calls_to("requisicao/informacao-de-leitura")).json["message_id"] == (
        "wamid.1"
    )


def test_template_package_goes_to_several_recipients_with_parameters(
    serpro: FakeSerpro, clock: Clock
) -> None:
    with client_for(serpro, clock) as api:
        result = api.send_template(
            "convite_consulta",
            ["5561987654321", "+5562911112222"],
            body_parameters=["Maria", "12/12"],
            header={"linkMedia": "https://x.gov.br/logo.png", "filename": "logo.png"},
        )
        rendered = api.send(
            CLIENT_ID,
            TemplateMessage(
                name="lembrete",
                language="pt_BR",
                components=({"type": "body", "parameters": [{"type": "text", "text": "João"}]},),
            ),
            CONTACT,
        )
        status = api.request_status(str(result.request_id))

    package, single = (c.json for c in serpro.calls_to("requisicao/mensagem/template"))
    assert package["destinatarios"] == ["+5561987654321", "+5562911112222"]
    assert package["body"]["parametros"] == [
        {"tipo": "text", "valor": "Maria"},
        {"tipo": "text", "valor": "12/12"},
    ]
    assert package["wabaId"] == WABA_ID
    assert package["header"]["filename"] == "logo.png"
    assert single["body"]["parametros"] == [{"tipo": "text", "valor": "João"}]
    assert rendered.request_id != result.request_id
    assert status["quantidadeMensagens"] == 2
    assert [r["destinatario"] for r in status["requisicoesEnvio"]] == package["destinatarios"]


def test_media_upload_and_download(serpro: FakeSerpro, clock: Clock) -> None:
    pdf = b"%PDF-1.4 edital\n\x00\x01"
    with client_for(serpro, clock) as api:
        media_id = api.upload_media(pdf, "application/pdf", "edital.pdf")
        assert api.download_media(media_id) == pdf
    assert serpro.media[media_id] == (pdf, "application/pdf")


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type", "code", "retryable"),
    [
        (404, "Not Found", "text/plain", None, False),  # a wrong path: never succeeds
        (400, {"message": "destinatario obrigatório"}, "application/json", None, False),
        (
            400,
            {"message": "[Error status code: 400]; (#100) Invalid parameter"},
            "application/json",
            100,
            False,
        ),
        (500, "code: 131026; details: Message Undeliverable.", "text/plain", 131026, False),
        (500, "code: 131000; details: Something went wrong", "text/plain", 131000, True),
        (400, "(#131056) pair rate limit", "text/plain", 131056, True),
        (429, {"message": "Too many requests"}, "application/json", None, True),
        (503, "Service Unavailable", "text/plain", None, True),
        (502, "[Error status code: 502]", "text/plain", None, True),
        (
            400,
            {"error": {"code": 131047, "message": "Re-engagement"}},
            "application/json",
            131047,
            False,
        ),
    ],
)
def test_errors_are_classified_like_the_cloud_api(
    serpro: FakeSerpro,
    clock: Clock,
    status: int,
    body: Any,
    content_type: str,
    code: int | None,
    retryable: bool,
) -> None:
    serpro.script(status, body, content_type)
    with client_for(serpro, clock) as api, pytest.raises(SendError) as raised:
        api.send(CLIENT_ID, only(render([{"text": "oi"}]).messages), CONTACT)
    error = raised.value
    assert (error.http_status, error.code, error.retryable) == (status, code, retryable)
    assert "SERPRO answered" in str(error)


def test_a_2xx_that_is_not_serpro_speaking_is_not_taken_for_a_send(
    serpro: FakeSerpro, clock: Clock
) -> None:
    serpro.script(200, "<html>Portal de login</html>", "text/html")
    serpro.script(200, {"status": "ok"})  # JSON without an id: accepted, nothing to match
    with client_for(serpro, clock) as api:
        with pytest.raises(SendError) as raised:
            api.send(CLIENT_ID, only(render([{"text": "um"}]).messages), CONTACT)
        accepted = api.send(CLIENT_ID, only(render([{"text": "dois"}]).messages), CONTACT)
    assert not raised.value.retryable
    assert "SERPRO_API_BASE_URL" in str(raised.value)
    assert accepted.request_id is None


def test_an_unknown_path_gets_the_plain_text_404(serpro: FakeSerpro, clock: Clock) -> None:
    api = client_for(serpro, clock, mark_read_path="/requisicao/nao-existe")
    with api, pytest.raises(SendError) as raised:
        api.mark_as_read("wamid.1")
    assert raised.value.http_status == 404


def test_connection_refused_is_retryable(clock: Clock) -> None:
    api = SerproClient(CLIENT_ID, CLIENT_SECRET, base_url=closed_port_url(), clock=clock)
    with api, pytest.raises(SendError) as raised:
        api.send(CLIENT_ID, only(render([{"text": "oi"}]).messages), CONTACT)
    assert raised.value.retryable
    assert raised.value.http_status is None


def test_meta_codes_are_found_in_serpro_texts() -> None:
    assert meta_code("[Error status code: 400]; (#100) Invalid parameter; x") == 100
    assert meta_code("code: 131049; details: marketing") == 131049
    assert meta_code("[Error status code: 500]") is None
    assert meta_code('{"code": 130429}') == 130429


def test_secrets_never_appear_in_errors(serpro: FakeSerpro, clock: Clock) -> None:
    serpro.script(400, {"message": f"bad client_secret={CLIENT_SECRET}"})
    with client_for(serpro, clock) as api, pytest.raises(SendError) as raised:
        api.send(CLIENT_ID, only(render([{"text": "oi"}]).messages), CONTACT)
    assert CLIENT_SECRET not in str(raised.value)
    assert CLIENT_SECRET not in repr(api)


# ---- webhooks -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["list", "data"])
def test_webhook_crud_in_both_forms(clock: Clock, shape: str) -> None:
    serpro = FakeSerpro(clock=clock, webhook_list_shape=shape)
    try:
        with client_for(serpro, clock) as api:
            api.register_webhook("https://gw.gov.br/webhooks/whatsapp/webhook", form="text")
            api.register_webhook(
                "https://gw2.gov.br/webhooks/whatsapp/webhook", jwt_token="segredo-do-webhook"
            )
            listed = api.list_webhooks()
            assert [w["uri"] for w in listed] == [
                "https://gw.gov.br/webhooks/whatsapp/webhook",
                "https://gw2.gov.br/webhooks/whatsapp/webhook",
            ]
            api.update_webhook(listed[0]["id"], "https://novo.gov.br/webhook", jwt_token="t2")
            api.delete_webhook(listed[1]["id"])
            assert [(w["uri"], w["jwtToken"]) for w in api.list_webhooks()] == [
                ("https://novo.gov.br/webhook", "t2")
            ]
            api.delete_webhook()
            assert api.list_webhooks() == []
        text_form, json_form = serpro.calls_to("webhook", "POST")
        assert text_form.headers["Content-Type"] == "text/plain"
        assert text_form.body == b"https://gw.gov.br/webhooks/whatsapp/webhook"
        assert json_form.json == {
            "uri": "https://gw2.gov.br/webhooks/whatsapp/webhook",
            "jwtToken": "segredo-do-webhook",
        }
    finally:
        serpro.close()


# ---- async ----------------------------------------------------------------------------------


def test_the_async_client_does_the_same(serpro: FakeSerpro, clock: Clock, store: Store) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with AsyncSerproClient(
            CLIENT_ID,
            CLIENT_SECRET,
            base_url=serpro.url,
            waba_id=WABA_ID,
            token_store=store,
            clock=clock,
        ) as api:
            sent = await asyncio.gather(
                *(
                    api.send(CLIENT_ID, only(render([{"text": f"m{n}"}]).messages), CONTACT)
                    for n in range(5)
                )
            )
            serpro.revoke_tokens()
            again = await api.send(CLIENT_ID, only(render([{"text": "após"}]).messages), CONTACT)
            media_id = await api.upload_media(b"img", "image/png", "a.png")
            data = await api.download_media(media_id)
            await api.register_webhook("https://gw.gov.br/w", jwt_token="x", form="json")
            hooks = await api.list_webhooks()
            status = await api.request_status(str(again.request_id))
            return sent, again, data, hooks, status

    sent, _again, data, hooks, status = asyncio.run(scenario())
    assert len({r.request_id for r in sent}) == 5
    assert sorted(serpro.texts()) == sorted([*(f"m{n}" for n in range(5)), "após", "após"])
    assert len(serpro.token_calls) == 2  # five concurrent sends, one token; then one re-auth
    assert data == b"img"
    assert hooks[0]["uri"] == "https://gw.gov.br/w"
    assert status["destinatarios"] == ["+5561987654321"]


# ---- the store's shared token, on SQLite and PostgreSQL -------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store(f"sqlite:///{tmp_path / 'tokens.db'}")
        opened.migrate()
        yield opened
        opened.close()
        return
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1/test)")
    schema = f"serpro_test_{uuid.uuid4().hex[:10]}"
    admin = Store(url).engine
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sqlalchemy.engine.make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    opened = Store(scoped.render_as_string(hide_password=False))
    try:
        opened.migrate()
        yield opened
    finally:
        opened.close()
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_the_store_keeps_one_token_per_key_and_replaces_it(any_store: Store) -> None:
    key = token_key(CLIENT_ID, "https://api.whatsapp.serpro.gov.br")
    assert len(key) <= 16  # provider_tokens.provider is String(16)
    assert any_store.provider_token(key) is None
    any_store.save_provider_token(key, "primeiro", 100.0)
    any_store.save_provider_token(key, "segundo", None)
    any_store.save_provider_token("serpro:outro", "outro", 5.0)
    assert any_store.provider_token(key) == ("segundo", None)
    assert any_store.provider_token("serpro:outro") == ("outro", 5.0)


def test_both_clients_are_senders(serpro: FakeSerpro, clock: Clock) -> None:
    """Checked by mypy too: a SerproClient is what the pipeline calls a Sender."""
    from whatsapp_api_integration.providers import Sender

    sender: Sender = client_for(serpro, clock)
    assert sender.provider == "serpro"
    sender.close()
