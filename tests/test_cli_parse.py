"""`whatsapp-gateway parse`, through main() and through the installed console script."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from whatsapp_api_integration.cli import main

pytestmark = pytest.mark.core

CORPUS = Path(__file__).parent / "corpus"
SCRIPT = Path(sys.executable).parent / "whatsapp-gateway"


def run_main(
    args: list[str],
    stdin: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = main(["parse", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_parse_prints_one_line_per_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run_main([], (CORPUS / "batch.json").read_bytes(), monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert [line["kind"] for line in lines] == [
        "message",
        "message",
        "message",
        "status",
        "status",
        "message",
    ]
    first = lines[0]
    for key in (
        "provider",
        "phone_number_id",
        "wa_id",
        "contact_name",
        "message_id",
        "message_type",
        "text",
        "data",
    ):
        assert key in first
    assert (first["wa_id"], first["contact_name"], first["text"]) == (
        "5561987654321",
        "Ana",
        "primeira",
    )
    assert first["sender"] == "+5561987654321"
    assert first["contact_key"] == "cloud_api:106540352242922:5561987654321"
    status = lines[3]
    assert (status["status"], status["wa_id"], status["text"], status["sender"]) == (
        "delivered",
        "16505551234",
        None,
        None,
    )


def test_parse_br_ninth_digit_and_file_argument(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(CORPUS / "text_br_mobile_without_ninth_digit.json")
    code, [line], _ = run_main([path], b"", monkeypatch, capsys)
    assert (code, line["sender"]) == (0, "+556187654321")
    code, [line], _ = run_main([path, "--br-ninth-digit"], b"", monkeypatch, capsys)
    assert (code, line["sender"], line["wa_id"]) == (0, "+5561987654321", "556187654321")


def test_parse_forced_provider(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (CORPUS / "serpro_text.json").read_bytes()
    code, [line], _ = run_main(["--provider", "serpro"], body, monkeypatch, capsys)
    assert (code, line["provider"], line["text"]) == (0, "serpro", "Olá, quero participar")
    code, lines, err = run_main(["--provider", "cloud_api"], body, monkeypatch, capsys)
    assert (code, lines) == (2, [])
    assert err == 'whatsapp-gateway parse: object: missing (expected "whatsapp_business_account")\n'


def test_parse_malformed_body(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run_main([], b"[1, 2", monkeypatch, capsys)
    assert (code, lines) == (2, [])
    assert err.startswith("whatsapp-gateway parse: body: not JSON")


def test_parse_body_with_nothing_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    assert run_main([], body, monkeypatch, capsys) == (0, [], "")


# ---- the real console script -------------------------------------------------------------

needs_script = pytest.mark.skipif(
    not SCRIPT.exists(), reason=f"console script not installed at {SCRIPT}"
)


def run_script(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(SCRIPT), "parse", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LANG": "C"},  # no UTF-8 locale: output must still be UTF-8
        check=False,
    )


@needs_script
def test_console_script_parses_every_corpus_file() -> None:
    for path in sorted(CORPUS.glob("*.json")):
        result = run_script(stdin=path.read_bytes())
        assert result.returncode == 0, (path.name, result.stderr)
        lines = result.stdout.decode("utf-8").splitlines()
        assert lines, path.name
        for line in lines:
            record = json.loads(line)
            assert record["kind"] in {"message", "status", "error", "unknown"}
            for key in ("provider", "phone_number_id", "wa_id", "contact_name", "message_id"):
                assert key in record
            for key in ("message_type", "text", "sender"):
                assert key in record


@needs_script
def test_console_script_keeps_emoji_in_utf8() -> None:
    result = run_script(stdin=(CORPUS / "reaction.json").read_bytes())
    assert result.returncode == 0
    assert "😮" in json.loads(result.stdout.decode("utf-8"))["text"]


@needs_script
def test_console_script_malformed_exits_2_with_the_path() -> None:
    body = json.loads((CORPUS / "text.json").read_text())
    body["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = None
    result = run_script(stdin=json.dumps(body).encode())
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "whatsapp-gateway parse: entry[0].changes[0].value.messages[0].timestamp: "
        "expected a string of digits, got null\n"
    )
