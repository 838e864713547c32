"""The Cloud API client over real HTTP to a loopback fake of Graph."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fakes import (
    FakeGraph,
    closed_port_url,
    fake_graph_fixture,  # noqa: F401 (a fixture)
)
from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.outbound import OutgoingMessage, render
from whatsapp_api_integration.providers import SendError, SendResult
from whatsapp_api_integration.providers.cloud_api import CloudApiClient, parse_retry_after

pytestmark = pytest.mark.timeout(30)

TOKEN = "test-token"


def text(body: str):  # type: ignore[no-untyped-def]
    (message,) = render([{"text": body}]).messages
    return message


def client(graph: FakeGraph) -> CloudApiClient:
    return CloudApiClient(TOKEN, base_url=graph.url, api_version="v23.0")


@pytest.fixture(params=["thread", "event loop"])
def way(request: pytest.FixtureRequest) -> str:
    """Each sending test runs twice: `send` (httpx, worker threads) and `send_async`
    (aiohttp, the worker process's event loop) must behave the same."""
    return str(request.param)


def send(
    api: CloudApiClient, way: str, number: str, message: OutgoingMessage, to: Recipient
) -> SendResult:
    if way == "thread":
        return api.send(number, message, to)

    async def on_a_loop() -> SendResult:
        try:
            return await api.send_async(number, message, to)
        finally:
            await api.aclose()

    return asyncio.run(on_a_loop())


def test_send_posts_the_rendered_body_with_the_token(way: str, fake_graph: FakeGraph) -> None:
    api = client(fake_graph)
    result = send(api, way, "123", text("olá"), Recipient(wa_id="5561987654321"))
    api.close()

    assert result.message_id == "wamid.fake.1"
    (request,) = fake_graph.message_requests
    assert request.path == "/v23.0/123/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.json["text"]["body"] == "olá"
    assert request.json["to"] == "5561987654321"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, 100, False),  # invalid parameter
        (400, 131047, False),  # outside the 24-hour window
        (400, 131056, True),  # pair rate limit, though a 400
        (429, 130429, True),
        (500, 131000, True),
        (500, 131026, False),  # a 5xx with a final code is final
        (503, None, True),
        (403, None, False),
        (400, 132001, False),  # template errors
        (401, 190, False),
    ],
)
def test_errors_are_classified_on_the_code_first(
    way: str, fake_graph: FakeGraph, status: int, code: int | None, retryable: bool
) -> None:
    document = {"error": {"message": "boom", "code": code}} if code is not None else {"x": 1}
    fake_graph.script((status, document))
    api = client(fake_graph)
    with pytest.raises(SendError) as raised:
        send(api, way, "123", text("oi"), Recipient(wa_id="5561987654321"))
    api.close()
    error = raised.value
    assert (error.retryable, error.code, error.http_status) == (retryable, code, status)


def test_retry_after_and_error_details_are_kept(way: str, fake_graph: FakeGraph) -> None:
    fake_graph.script(
        (
            429,
            {
                "error": {
                    "message": "(#130429) Rate limit hit",
                    "code": 130429,
                    "error_data": {"details": "Cloud API message throughput has been reached."},
                }
            },
            {"Retry-After": "7"},
        )
    )
    api = client(fake_graph)
    with pytest.raises(SendError, match="throughput has been reached") as raised:
        send(api, way, "123", text("oi"), Recipient(wa_id="5561987654321"))
    api.close()
    assert raised.value.retry_after == 7.0


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_connection_errors_and_timeouts_are_retryable_and_never_show_the_token(
    way: str, fake_graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    api = CloudApiClient(TOKEN, base_url=closed_port_url(), timeout=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(SendError) as refused:
        send(api, way, "123", text("oi"), Recipient(wa_id="5561987654321"))
    assert refused.value.retryable
    assert TOKEN not in str(refused.value)
    assert TOKEN not in caplog.text


def test_an_accepted_answer_without_an_id_is_not_retried(way: str, fake_graph: FakeGraph) -> None:
    fake_graph.script((200, {"messages": []}))
    api = client(fake_graph)
    with pytest.raises(SendError, match=r"messages\[0\]\.id") as raised:
        send(api, way, "123", text("oi"), Recipient(wa_id="5561987654321"))
    api.close()
    assert not raised.value.retryable


def test_media_upload_url_and_download(fake_graph: FakeGraph) -> None:
    api = client(fake_graph)
    media_id = api.upload_media("123", b"\xff\xd8jpeg-bytes", "image/jpeg", "foto.jpg")
    url = api.media_url(media_id)
    content = api.download_media(media_id)
    api.close()

    assert url.endswith(f"/files/{media_id}")
    assert b"jpeg-bytes" in content  # the fake keeps the whole multipart body it got
    upload = next(r for r in fake_graph.requests if r.path == "/v23.0/123/media")
    assert b'name="messaging_product"' in upload.body
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in fake_graph.requests)


def test_an_unknown_media_id_is_a_final_error(fake_graph: FakeGraph) -> None:
    api = client(fake_graph)
    with pytest.raises(SendError) as raised:
        api.media_url("nope")
    api.close()
    assert (raised.value.code, raised.value.retryable) == (100, False)


def test_a_token_is_required() -> None:
    with pytest.raises(ValueError, match="WPP_AUTHORIZATION_TOKEN"):
        CloudApiClient("")


def test_an_error_that_repeats_the_token_has_it_masked(way: str, fake_graph: FakeGraph) -> None:
    """The error's text is stored and shown (dead letters), where log redaction cannot reach."""
    echoed = f"Invalid OAuth access token - Cannot parse access token: Bearer {TOKEN}"
    fake_graph.script((401, {"error": {"message": echoed, "code": 190}}))
    api = client(fake_graph)
    with pytest.raises(SendError) as raised:
        send(api, way, "123", text("oi"), Recipient(wa_id="5561987654321"))
    api.close()
    assert TOKEN not in str(raised.value)
    assert "Cannot parse access token: Bearer ****" in str(raised.value)
