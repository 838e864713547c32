"""The generated reference (docs/reference/*.md) matches the code, and `whatsapp-gateway db`.

When a test here fails after you added a setting or a command: describe the setting in
src/whatsapp_api_integration/settings_docs.py, then run ./scripts/gen-reference and commit
docs/reference/.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from whatsapp_api_integration import reference
from whatsapp_api_integration.cli import build_parser, main
from whatsapp_api_integration.settings import SETTING_NAMES, load_settings
from whatsapp_api_integration.settings_docs import SETTING_DOCS

REFERENCE = Path(__file__).parents[1] / "docs" / "reference"
FIX = "describe it in src/whatsapp_api_integration/settings_docs.py, then run scripts/gen-reference"


def test_every_setting_is_documented() -> None:
    missing = reference.undocumented_settings()
    assert not missing, f"settings with no description: {missing}; {FIX}"


def test_no_setting_is_described_twice() -> None:
    """A dict literal keeps the last of two equal keys silently (two branches may both add one)."""
    import ast

    source = Path(reference.__file__).with_name("settings_docs.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SETTING_DOCS":
            assert isinstance(node.value, ast.Dict)
            keys = [str(k.value) for k in node.value.keys if isinstance(k, ast.Constant)]
            assert len(keys) == len(SETTING_DOCS) > 0
            twice = sorted({key for key in keys if keys.count(key) > 1})
            assert not twice, f"described twice in settings_docs.py: {twice}"
            return
    pytest.fail("SETTING_DOCS not found in settings_docs.py")


def test_no_description_for_a_setting_that_does_not_exist() -> None:
    stale = sorted(set(SETTING_DOCS) - set(SETTING_NAMES))
    assert not stale, f"SETTING_DOCS describes settings the code no longer reads: {stale}"


@pytest.mark.parametrize("name", sorted(reference.pages()))
def test_committed_reference_equals_the_generated_one(name: str) -> None:
    path = REFERENCE / name
    assert path.is_file(), f"{path} is missing: run scripts/gen-reference"
    assert path.read_text(encoding="utf-8") == reference.pages()[name], (
        f"docs/reference/{name} is out of date: run scripts/gen-reference"
    )


def test_documented_defaults_are_what_an_empty_configuration_gives() -> None:
    """The page shows the dataclass default; load_settings with nothing set must agree."""
    loaded = load_settings({}, env_files=())
    checked = 0
    for name in SETTING_NAMES:
        doc = SETTING_DOCS[name]
        if doc.default_en is not None:
            continue
        expected = reference.format_default(reference.dataclass_default(name))
        assert reference.format_default(getattr(loaded, name.lower())) == expected, name
        checked += 1
    assert checked > 20


def test_settings_pages_list_every_setting_once_in_each_language() -> None:
    for language in ("en", "pt-BR"):
        page = reference.settings_page(language)
        for name in SETTING_NAMES:
            rows = [line for line in page.splitlines() if line.startswith(f"| `{name}` |")]
            assert len(rows) == 1, (language, name)


def test_an_undocumented_setting_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "SETTING_NAMES", (*SETTING_NAMES, "NEW_SETTING"))
    with pytest.raises(reference.UndocumentedSettingError, match="NEW_SETTING"):
        reference.settings_page("en")
    assert reference.main(["--check", "--folder", str(REFERENCE)]) == 1


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> list[str]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append(" ".join((*prefix, name)))
                paths += _command_paths(sub, (*prefix, name))
    return paths


def test_cli_page_has_every_command_and_option() -> None:
    parser = build_parser()
    page = reference.cli_page(parser)
    commands = _command_paths(parser, (parser.prog,))
    assert len(commands) >= 8
    for command in commands:
        assert f"`{command}`\n" in page, command
    serve = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "serve"
    ]
    for action in serve._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert f"`{option}" in page, option


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert reference.main(["--folder", str(tmp_path)]) == 0
    assert reference.main(["--check", "--folder", str(tmp_path)]) == 0
    (tmp_path / "cli.md").write_text("old\n", encoding="utf-8")
    assert reference.main(["--check", "--folder", str(tmp_path)]) == 1
    assert (tmp_path / "cli.md").read_text(encoding="utf-8") == "old\n"


# ---- whatsapp-gateway db -------------------------------------------------------------------


def test_db_current_then_upgrade_on_a_new_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["db", "current", "--database-url", url]) == 3
    assert "migrations not current: database at none" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "migrations at" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", url]) == 0  # again: nothing to do
    assert main(["db", "current", "--database-url", url]) == 0
    with sqlite3.connect(tmp_path / "store.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"alembic_version", "webhook_bodies"} <= tables


def test_db_reads_database_url_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "variables.env").write_text("DATABASE_URL=sqlite:///from-file.db\n")
    assert main(["db", "upgrade"]) == 0
    assert "sqlite:///from-file.db: migrations at" in capsys.readouterr().out
    assert (tmp_path / "from-file.db").is_file()


def test_db_on_an_unusable_url_says_so_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["db", "current", "--database-url", "mysql://user:secret-pw@host/db"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "unsupported database 'mysql'" in err
    assert "secret-pw" not in err
    assert "Traceback" not in err
