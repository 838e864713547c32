"""`whatsapp-gateway lint`: a Rasa domain's responses checked against WhatsApp's limits."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from whatsapp_api_integration.cli import main

EXAMPLE_DOMAIN = Path(__file__).parents[1] / "examples" / "rasa-bot" / "domain.yml"


def lint(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["lint", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "domain.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_example_bots_domain_lints_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lint(capsys, str(EXAMPLE_DOMAIN))
    assert code == 0, out
    assert "0 problem(s)" in out
    # Five help options: a note (a list is how WhatsApp shows them), not a problem.
    assert "note: utter_help[0]: 5 options, more than 3 reply buttons: sent as a list" in out
    assert "(5 rows: Como participar | Como votar |" in out


def test_each_reshaped_or_refused_response_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    responses = {
        "utter_long_button": [
            {
                "text": "Você concorda?",
                "buttons": [
                    {"title": "Concordo totalmente com isso", "payload": "1"},
                    {"title": "Não", "payload": "0"},
                ],
            }
        ],
        "utter_twelve": [
            {
                "text": "Escolha um tema",
                "buttons": [
                    {"title": f"Opção {n}", "payload": f'/tema{{"n": {n}}}'} for n in range(12)
                ],
            }
        ],
        "utter_long_text": [{"text": "palavra " * 700}],
        "utter_body_too_long": [{"text": "a" * 1100, "buttons": [{"title": "Sim"}]}],
        "utter_repeated": [
            {
                "text": "Qual?",
                "buttons": [{"title": "Sim", "payload": "a"}, {"title": "sim", "payload": "b"}],
            }
        ],
        "utter_bad_custom": [
            {
                "custom": {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": ""},
                        "action": {"buttons": []},
                    },
                }
            }
        ],
        "utter_unknown_key": [{"text": "Olá", "emoji": True}],
        "utter_slack_only": [{"channel": "slack", "text": "b" * 5000}],
    }
    domain = tmp_path / "domain.yml"
    domain.write_text(yaml.safe_dump({"version": "3.1", "responses": responses}), "utf-8")
    code, out, _ = lint(capsys, str(domain))
    assert code == 1
    assert (
        "problem: utter_long_button[0]: button title 'Concordo totalmente com isso' is 28 "
        "characters, over 20 for a reply button: sent as a list" in out
    )
    assert (
        "problem: utter_twelve[0]: 12 options, but a WhatsApp list holds 10: sent as 2 lists" in out
    )
    assert "problem: utter_long_text[0]: text of 5600 characters, over 4096: sent in 2 parts" in out
    assert "problem: utter_body_too_long[0]: text of 1100 characters, over 1024" in out
    assert "problem: utter_repeated[0]: option titles repeat (Sim, sim)" in out
    assert "problem: utter_bad_custom[0]: WhatsApp would refuse it:" in out
    assert "problem: utter_unknown_key[0]: unknown key 'emoji' ignored" in out
    assert "utter_slack_only" not in out  # never sent to WhatsApp
    assert "the contact sees:" in out
    assert "8 response(s) in 1 file(s)" in out


def test_strict_makes_notes_fail(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lint(capsys, "--strict", str(EXAMPLE_DOMAIN))
    assert code == 1
    assert "0 problem(s), 1 note(s)" in out


def test_a_folder_of_domain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yml").write_text("responses:\n  utter_a:\n    - text: oi\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("intents: [greet]\n", encoding="utf-8")
    code, out, _ = lint(capsys, str(tmp_path))
    assert code == 0
    assert "1 response(s) in 2 file(s): 0 problem(s), 0 note(s)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("responses: [1, 2]", "`responses` must map names to lists of variations"),
        ("key: [unclosed", "not valid YAML"),
        ("- just a list", "expected a Rasa domain (a mapping)"),
    ],
)
def test_unreadable_domains_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    code, _, err = lint(capsys, str(write(tmp_path, content)))
    assert code == 2
    assert message in err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lint(capsys, str(tmp_path / "nope.yml"))
    assert code == 2
    assert "no such file or folder" in err
