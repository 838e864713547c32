"""`whatsapp-gateway check-config`, `dead-letters` and `simulate`'s helpers, run in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import FakeRasa
from web_support import (
    restore_logging,  # noqa: F401  (autouse fixture)
    text_body,
)
from whatsapp_api_integration.cli import main
from whatsapp_api_integration.cli.gateway import answers_to, simulated_body
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.settings import SETTING_NAMES, build_gateway, load_settings

SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "EAAG-authorization-token-9999",
    "WPP_VERIFY_TOKEN": "verify-token-value-8888",
    "WPP_APP_SECRET": "app-secret-value-7777",
    "ADMIN_TOKEN": "admin-token-value-4444",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean directory as the current one, and no gateway settings in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_check_config_shows_values_sources_and_masks_secrets(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".env").write_text(
        f"WPP_APP_SECRET={SECRETS['WPP_APP_SECRET']}\nWORKERS=2\n"
        "DATABASE_URL=postgresql://gw:db-password-5555@db/gw\n"
    )
    (project / "variables.env").write_text(f"WPP_VERIFY_TOKEN={SECRETS['WPP_VERIFY_TOKEN']}\n")
    monkeypatch.setenv("WPP_AUTHORIZATION_TOKEN", SECRETS["WPP_AUTHORIZATION_TOKEN"])
    monkeypatch.setenv("ADMIN_TOKEN", SECRETS["ADMIN_TOKEN"])
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    for value in [*SECRETS.values(), "db-password-5555"]:
        assert value not in out
    assert "Mode: Cloud API" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert lines["WPP_AUTHORIZATION_TOKEN"].split()[1:] == ["****9999", "env"]
    assert lines["WPP_APP_SECRET"].split()[1:] == ["****7777", ".env"]
    assert lines["WPP_VERIFY_TOKEN"].split()[1:] == ["****8888", "variables.env"]
    assert lines["WORKERS"].split()[1:] == ["2", ".env"]
    assert lines["MAX_ATTEMPTS"].split()[1:] == ["8", "default"]
    assert "postgresql://gw:****@db/gw" in out
    assert "WPP_PHONE_NUMBER_IDENTIFIER" in out.split("Missing for production:")[1]


def test_check_config_in_sandbox_says_what_production_needs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "Mode: sandbox" in out
    missing = out.split("Missing for production:")[1]
    assert "WPP_AUTHORIZATION_TOKEN" in missing
    assert "WPP_APP_SECRET" in missing


def test_check_config_exits_1_naming_each_wrong_setting(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKERS", "x")
    monkeypatch.setenv("ANSWER_BACKEND", "rasa")
    monkeypatch.setenv("WPP_APP_SECRET", SECRETS["WPP_APP_SECRET"])
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "WORKERS: expected a whole number ≥ 0, got 'x'" in err
    assert "ANSWER_BACKEND=rasa needs RASA_URL" in err
    assert SECRETS["WPP_APP_SECRET"] not in err


def test_check_config_warns_about_an_empty_app_secret(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".env").write_text("WPP_APP_SECRET=\n")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "WPP_APP_SECRET is set but empty" in out.split("Warnings:")[1]


# ---- dead letters ----------------------------------------------------------------------


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    server = FakeRasa()
    yield server
    server.close()


def test_dead_letters_list_show_and_replay(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rasa: FakeRasa,
) -> None:
    rasa.script((200, {"not": "a list of responses"}))  # never worth a retry: a dead letter
    monkeypatch.setenv("RASA_URL", rasa.url)
    monkeypatch.setenv("WORKERS", "0")
    assert main(["dead-letters", "list"]) == 0
    assert "No dead letters." in capsys.readouterr().out

    gateway = build_gateway(load_settings())
    body = text_body("vai falhar")
    gateway.accept(body, {}, parse_webhook(body))
    gateway.process_available()
    gateway.close()

    assert main(["dead-letters", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == 1
    letter_id = str(listed[0]["id"])

    assert main(["dead-letters", "show", letter_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == listed[0]["id"]
    assert "list" in json.dumps(shown)

    assert main(["dead-letters", "show", "999999"]) == 1
    assert "no dead letter with id 999999" in capsys.readouterr().err

    assert main(["dead-letters", "replay", letter_id]) == 0
    assert "queued again" in capsys.readouterr().out
    assert main(["dead-letters", "list"]) == 0
    assert "No dead letters." in capsys.readouterr().out


# ---- simulate's pieces -----------------------------------------------------------------


def test_simulated_bodies_parse_as_the_message_they_describe() -> None:
    document = simulated_body("olá", sender="5561987654321", name="Maria", phone_number_id="1")
    (message,) = parse_webhook(json.dumps(document))
    assert message.from_ == "5561987654321"  # type: ignore[union-attr]
    assert message.contact_name == "Maria"  # type: ignore[union-attr]
    assert message.data.body == "olá"  # type: ignore[union-attr]
    tap = simulated_body("", sender="1", name="x", phone_number_id="1", button_reply="0")
    (message,) = parse_webhook(json.dumps(tap))
    assert message.data.id == "0"  # type: ignore[union-attr]


def test_answers_to_picks_the_replies_to_our_message_only() -> None:
    conversation = [
        {"direction": "in", "id": 1, "wamid": "wamid.old", "state": "answered"},
        {
            "direction": "out",
            "id": 1,
            "in_reply_to": 1,
            "body": {"type": "text", "text": {"body": "velha"}},
        },
        {"direction": "in", "id": 2, "wamid": "wamid.ours", "state": "processing"},
        {
            "direction": "out",
            "id": 2,
            "in_reply_to": 2,
            "body": {"type": "text", "text": {"body": "nova"}},
        },
    ]
    answers, done = answers_to(conversation, "wamid.ours")
    assert [text for _, text in answers] == ["nova"]
    assert done is False
    conversation[2]["state"] = "answered"
    assert answers_to(conversation, "wamid.ours")[1] is True
    assert answers_to(conversation, "wamid.missing") == ([], False)


def test_simulate_without_a_running_gateway_explains(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "oi", "--url", "http://127.0.0.1:9", "--wait", "1"]) == 1
    assert "could not reach the gateway" in capsys.readouterr().err
