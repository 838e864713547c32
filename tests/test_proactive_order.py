"""A proactive message (a reminder, the bot's answer to a failed delivery) does not land
between the replies a worker is still sending to the same contact (pipeline/proactive.py).

Graph holds the first reply's request until the test lets it go, so the proactive send is
asked for while the answer is half sent; what decides the test is the order Graph records,
not a clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeGraph, Recorded, text_body
from web_support import wait_until
from whatsapp_api_integration.backends.callable_backend import CallableBackend
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.pipeline.proactive import ProactiveSender
from whatsapp_api_integration.providers.cloud_api import CloudApiClient

pytestmark = pytest.mark.timeout(60)

CONTACT = "5561987654321"


class HoldingGraph(FakeGraph):
    """Holds the first `/messages` request until `release` is set."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        super().__init__()

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        if request.path.endswith("/messages") and not self.holding.is_set():
            self.holding.set()
            self.release.wait(30)
        return super().handle(request)


@pytest.fixture
def graph() -> Iterator[HoldingGraph]:
    server = HoldingGraph()
    yield server
    server.release.set()
    server.close()


def test_a_proactive_message_waits_for_the_answer_being_sent(
    tmp_path: Path, graph: HoldingGraph
) -> None:
    backend = CallableBackend(lambda incoming: [{"text": "parte 1"}, {"text": "parte 2"}])
    client = CloudApiClient(graph.token, base_url=graph.url, timeout=30)
    config = GatewayConfig(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        workers=0,
        send_rate=0,
        default_phone_number_id="106540352242922",
    )
    gateway = Gateway(config, backend, {"cloud_api": client})
    try:
        body = text_body("wamid.order.1", "oi")
        gateway.accept(body, {}, parse_webhook(body))
        worker = threading.Thread(target=gateway.process_available)
        worker.start()
        assert graph.holding.wait(20)  # "parte 1" is on its way, "parte 2" waits for it
        proactive = threading.Thread(
            target=ProactiveSender(gateway).send, args=(f"+{CONTACT}", [{"text": "lembrete"}])
        )
        proactive.start()
        # Without the wait the reminder reaches Graph now, between the two parts.
        wait_until(lambda: len(graph.message_requests) >= 2, timeout=2)
        graph.release.set()
        worker.join(20)
        proactive.join(20)
    finally:
        gateway.close()
    assert graph.texts() == ["parte 1", "parte 2", "lembrete"]
