"""`whatsapp-gateway render`: JSON responses on stdin, request bodies on stdout."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from whatsapp_api_integration.cli import main

pytestmark = pytest.mark.core

RESPONSES = [
    {"recipient_id": "+5561987654321", "text": "Olá!"},
    {"text": "Gênero?", "buttons": [{"title": "Prefiro não dizer", "payload": 0}], "extra": 1},
]
CLOUD = [
    {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5561987654321",
        "type": "text",
        "text": {"preview_url": False, "body": "Olá!"},
    },
    {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5561987654321",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Gênero?"},
            "action": {
                "buttons": [{"type": "reply", "reply": {"id": "0", "title": "Prefiro não dizer"}}]
            },
        },
    },
]


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["render", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cloud_api_bodies_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, json.dumps(RESPONSES), "--to", "5561987654321")
    assert code == 0
    assert json.loads(out) == CLOUD
    assert err == "warning: response[1]: unknown key 'extra' ignored\n"


def test_to_a_bsuid(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(monkeypatch, capsys, '[{"text": "oi"}]', "--user-id", "BR.1349")
    assert code == 0
    assert json.loads(out)[0]["recipient"] == "BR.1349"
    assert "to" not in json.loads(out)[0]


def test_serpro_paths_and_bodies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(
        monkeypatch,
        capsys,
        json.dumps(RESPONSES),
        "--provider",
        "serpro",
        "--to",
        "5561987654321",
        "--waba-id",
        "77",
    )
    assert code == 0
    assert json.loads(out) == [
        {
            "path": "/requisicao/mensagem/texto",
            "body": {
                "destinatario": "+5561987654321",
                "body": "Olá!",
                "preview_url": False,
                "wabaId": "77",
            },
        },
        {
            "path": "/requisicao/mensagem/interativa-botoes",
            "body": {
                "destinatario": "+5561987654321",
                "textoBody": "Gênero?",
                "buttons": [{"id": "0", "titulo": "Prefiro não dizer"}],
                "wabaId": "77",
            },
        },
    ]


def test_payload_references_are_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    long = "p" * 300
    stdin = json.dumps([{"text": "?", "buttons": [{"title": "Ok", "payload": long}]}])
    code, out, err = run_main(monkeypatch, capsys, stdin, "--to", "55")
    ref = json.loads(out)[0]["interactive"]["action"]["buttons"][0]["reply"]["id"]
    assert code == 0
    assert err == f'payload reference: {ref} = "{long}"\n'


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("not json", "stdin is not JSON"),
        ('{"text": "oi"}', "expected a JSON list of response objects, got dict"),
        ('[{"text": "oi"}, "oi"]', "item 1 is not an object"),
    ],
)
def test_bad_input_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, message: str
) -> None:
    code, out, err = run_main(monkeypatch, capsys, stdin, "--to", "55")
    assert code == 2
    assert out == ""
    assert err.startswith("whatsapp-gateway render: ")
    assert message in err


def test_a_recipient_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "[]")
    assert code == 2
    assert "--to" in err


def test_a_custom_graph_body_cannot_go_to_serpro(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = json.dumps([{"custom": {"type": "text", "text": {"body": "oi"}}}])
    code, out, err = run_main(monkeypatch, capsys, stdin, "--provider", "serpro", "--to", "55")
    assert code == 2
    assert out == ""
    assert "SERPRO request" in err


def console_script() -> Path:
    script = Path(sys.executable).parent / "whatsapp-gateway"
    if not script.exists():
        pytest.skip(f"the console script is not installed beside {sys.executable}")
    return script


def run_script(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(console_script()), "render", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def test_console_script() -> None:
    done = run_script(json.dumps(RESPONSES), "--to", "5561987654321")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == CLOUD


def test_console_script_bad_input() -> None:
    done = run_script("[1, 2]", "--to", "5561987654321")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "item 0 is not an object" in done.stderr
