"""Answer backends: Rasa over real HTTP to a loopback fake, echo, Python callables."""

from __future__ import annotations

import asyncio
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from fakes import (
    FakeRasa,
    closed_port_url,
    fake_rasa_fixture,  # noqa: F401 (a fixture)
    text_body,
)
from whatsapp_api_integration.backends import BackendError, load_backend
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.backends.echo import EchoBackend
from whatsapp_api_integration.backends.rasa import RasaBackend
from whatsapp_api_integration.core.contract import IncomingMessage, to_incoming
from whatsapp_api_integration.core.events import Message
from whatsapp_api_integration.core.inbound import parse_webhook

pytestmark = pytest.mark.timeout(30)


def incoming(text: str = "oi") -> IncomingMessage:
    (message,) = parse_webhook(text_body("wamid.b", text))
    assert isinstance(message, Message)
    result = to_incoming(message)
    assert result is not None
    return result


@pytest.fixture(params=["thread", "event loop"])
def way(request: pytest.FixtureRequest) -> str:
    """Each Rasa test runs twice: `answer` (httpx, worker threads) and `answer_async`
    (aiohttp, the worker process's event loop) must behave the same."""
    return str(request.param)


def ask(backend: RasaBackend, way: str, message: IncomingMessage) -> list[dict[str, Any]]:
    if way == "thread":
        return backend.answer(message)

    async def on_a_loop() -> list[dict[str, Any]]:
        try:
            return await backend.answer_async(message)
        finally:
            await backend.aclose()

    return asyncio.run(on_a_loop())


def test_rasa_gets_sender_message_and_metadata(way: str, fake_rasa: FakeRasa) -> None:
    backend = RasaBackend(fake_rasa.url + "/", timeout=5)
    answer = ask(backend, way, incoming("olá"))
    backend.close()

    assert answer == [{"recipient_id": "+5561987654321", "text": "Você disse: olá"}]
    (request,) = fake_rasa.messages
    assert (request["sender"], request["message"]) == ("+5561987654321", "olá")
    assert request["metadata"]["message_id"] == "wamid.b"
    assert request["metadata"]["phone_number_id"] == "106540352242922"


@pytest.mark.parametrize(
    ("status", "document", "retryable", "says"),
    [
        (503, {"error": "loading"}, True, "503"),
        (500, "boom", True, "500"),
        (404, {"error": "no channel"}, False, "rest` channel"),
        (200, {"text": "a dict"}, False, "expected a list"),
        (200, ["text"], False, "item 0 is str"),
    ],
)
def test_rasa_failures_say_whether_to_retry(
    way: str, fake_rasa: FakeRasa, status: int, document: Any, retryable: bool, says: str
) -> None:
    fake_rasa.script((status, document))
    backend = RasaBackend(fake_rasa.url, timeout=5)
    with pytest.raises(BackendError, match=says) as raised:
        ask(backend, way, incoming())
    backend.close()
    assert raised.value.retryable is retryable


def test_rasa_unreachable_or_slow_is_retryable(way: str, fake_rasa: FakeRasa) -> None:
    with pytest.raises(BackendError, match="unreachable") as refused:
        ask(RasaBackend(closed_port_url(), timeout=2), way, incoming())
    assert refused.value.retryable
    fake_rasa.delay = 0.5
    with pytest.raises(BackendError, match="timed out") as slow:
        ask(RasaBackend(fake_rasa.url, timeout=0.1), way, incoming())
    assert slow.value.retryable


def test_a_busy_event_loop_does_not_turn_an_answer_into_a_timeout(fake_rasa: FakeRasa) -> None:
    """The timeout counts while waiting for Rasa's bytes, not while the loop is busy: an
    answer that arrived while the loop was held (a worker on SCHED_IDLE, a long store call)
    is read, not taken for a timeout that would ask the bot again."""
    fake_rasa.delay = 0.1
    backend = RasaBackend(fake_rasa.url, timeout=0.3)

    async def on_a_busy_loop() -> list[dict[str, Any]]:
        try:
            asking = asyncio.create_task(backend.answer_async(incoming("oi")))
            await asyncio.sleep(0.05)  # the question is out
            time.sleep(0.6)  # the loop is held longer than the timeout; Rasa answers meanwhile
            return await asking
        finally:
            await backend.aclose()

    assert asyncio.run(on_a_busy_loop()) == [
        {"recipient_id": "+5561987654321", "text": "Você disse: oi"}
    ]


def test_echo_shows_the_text_the_backend_was_sent() -> None:
    assert EchoBackend().answer(incoming("tudo bem?")) == [{"text": "Você disse: tudo bem?"}]


def test_callables_may_be_sync_or_async_and_none_means_no_reply() -> None:
    async def answer_later(message: IncomingMessage) -> list[dict[str, Any]]:
        return [{"text": message.text.upper()}]

    assert CallableBackend(answer_later).answer(incoming("oi")) == [{"text": "OI"}]
    assert CallableBackend(lambda message: None).answer(incoming()) == []


def test_a_callable_that_raises_is_retryable_unless_it_says_otherwise() -> None:
    def broken(message: IncomingMessage) -> list[dict[str, Any]]:
        raise RuntimeError("database away")

    def final(message: IncomingMessage) -> list[dict[str, Any]]:
        raise BackendError("never", retryable=False)

    with pytest.raises(BackendError, match="RuntimeError: database away") as raised:
        CallableBackend(broken).answer(incoming())
    assert raised.value.retryable
    with pytest.raises(BackendError) as final_error:
        CallableBackend(final).answer(incoming())
    assert not final_error.value.retryable


@pytest.fixture
def bot_module() -> Iterator[str]:
    module = types.ModuleType("pipeline_test_bot")

    def answer(message: IncomingMessage) -> list[dict[str, Any]]:
        return [{"text": f"bot: {message.text}"}]

    class Bot:
        def answer(self, message: IncomingMessage) -> list[dict[str, Any]]:
            return [{"text": f"object: {message.text}"}]

    module.answer = answer  # type: ignore[attr-defined]
    module.bot = Bot()  # type: ignore[attr-defined]
    module.not_callable = 42  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def test_load_backend_by_name(bot_module: str, fake_rasa: FakeRasa) -> None:
    assert load_backend(f"{bot_module}:answer", rasa_url=None, timeout=1).answer(
        incoming("oi")
    ) == [{"text": "bot: oi"}]
    assert load_backend(f"{bot_module}:bot", rasa_url=None, timeout=1).answer(incoming("oi")) == [
        {"text": "object: oi"}
    ]
    assert isinstance(load_backend("echo", rasa_url=None, timeout=1), EchoBackend)
    rasa = load_backend("rasa", rasa_url=fake_rasa.url, timeout=1)
    assert isinstance(rasa, RasaBackend)
    rasa.close()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("rasa", "needs RASA_URL"),
        ("nonsense", "expected 'rasa', 'echo'"),
        ("no_such_module_xyz:answer", "cannot import"),
        ("{module}:missing", "has no attribute"),
        ("{module}:not_callable", "not callable"),
    ],
)
def test_load_backend_errors_name_the_setting(bot_module: str, spec: str, says: str) -> None:
    with pytest.raises(ValueError, match="ANSWER_BACKEND") as raised:
        load_backend(spec.format(module=bot_module), rasa_url=None, timeout=1)
    assert says in str(raised.value)
