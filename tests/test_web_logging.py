"""Logging: text and JSON lines, secrets and tokens never printed, contacts masked on demand."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from web_support import restore_logging  # noqa: F401  (autouse fixture)
from whatsapp_api_integration import logging_setup

SECRET = "app-secret-0123456789abcdef"
TOKEN = "EAAGverylongaccesstoken987654321"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_whatsapp_gateway_handler", False):
            root.removeHandler(handler)


def test_text_lines_never_show_a_secret(stream: io.StringIO) -> None:
    logging_setup.configure("INFO", "text", False, secrets=[SECRET, TOKEN], stream=stream)
    log = logging.getLogger("whatsapp_api_integration.test")
    log.info("secret is %s and token %s", SECRET, TOKEN)
    log.info("Authorization: Bearer %s", "some-other-bearer-value")
    try:
        raise RuntimeError(f"failed with {TOKEN}")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert SECRET not in text
    assert TOKEN not in text
    assert "some-other-bearer-value" not in text
    assert "****" in text
    assert "boom" in text


def test_query_string_tokens_are_redacted(stream: io.StringIO) -> None:
    logging_setup.configure("INFO", "text", False, stream=stream)
    logging.getLogger("werkzeug").info(
        '127.0.0.1 - - "GET /webhooks/whatsapp/webhook?hub.mode=subscribe&'
        'hub.verify_token=not-configured-anywhere&hub.challenge=42 HTTP/1.1" 200 -'
    )
    text = stream.getvalue()
    assert "not-configured-anywhere" not in text
    assert "hub.challenge=42" in text


def test_json_format_is_one_object_per_line(stream: io.StringIO) -> None:
    logging_setup.configure("DEBUG", "json", False, secrets=[SECRET], stream=stream)
    log = logging.getLogger("whatsapp_api_integration.test")
    log.debug("first %s", SECRET, extra={"contact": "5561987654321"})
    log.warning("second\nwith a newline")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "DEBUG"
    assert first["logger"] == "whatsapp_api_integration.test"
    assert first["message"] == "first ****"
    assert first["contact"] == "5561987654321"
    assert second["message"] == "second\nwith a newline"


def test_contacts_are_masked_when_asked(stream: io.StringIO) -> None:
    logging_setup.configure("INFO", "text", True, stream=stream)
    logging.getLogger("x").info("from 5561987654321 user BR.13491208655302741918 at 1700000000")
    text = stream.getvalue()
    assert "55619****4321" in text
    assert "5561987654321" not in text
    assert "13491208655302741918" not in text
    assert "1700000000" in text  # a timestamp is not a phone number


def test_configure_twice_keeps_one_handler(stream: io.StringIO) -> None:
    logging_setup.configure("INFO", "text", False, stream=stream)
    logging_setup.configure("INFO", "text", False, stream=stream)
    logging.getLogger("x").info("once")
    assert stream.getvalue().count("once") == 1
