"""Settings: sources and their order, defaults, derived values, validation messages, masking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whatsapp_api_integration.settings import (
    SETTING_NAMES,
    Settings,
    SettingsError,
    describe,
    load_settings,
    mask_database_url,
    mask_secret,
)

NO_FILES: tuple[str, ...] = ()


def load(env: dict[str, str] | None = None, files: tuple[str, ...] = NO_FILES) -> Settings:
    return load_settings(env or {}, env_files=files)


def problems_of(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        load(env)
    return caught.value.problems


def test_defaults_are_the_designs() -> None:
    settings = load()
    assert settings.sandbox
    assert settings.mode == "sandbox"
    assert settings.whatsapp_provider == "cloud_api"
    assert settings.answer_backend == "echo"
    assert settings.database_url == "sqlite:///whatsapp_gateway.db"
    assert settings.workers == 4
    assert settings.max_attempts == 8
    assert (settings.send_rate, settings.send_burst) == (80.0, 80)
    assert settings.rasa_timeout == 30.0
    assert settings.max_body_bytes == 4194304
    assert settings.playground is True  # on in sandbox
    assert (settings.log_format, settings.log_level) == ("text", "INFO")
    assert settings.mask_contacts is False
    assert settings.br_ninth_digit is False
    assert settings.list_button_label == "Opções"
    assert settings.interactive_fallback_body == "Escolha uma opção:"
    assert settings.more_options_body == "Mais opções:"
    assert settings.wpp_api_base_url == "https://graph.facebook.com"
    assert settings.serpro_api_base_url == "https://api.whatsapp.serpro.gov.br"
    assert settings.wpp_api_version.startswith("v")
    assert set(settings.sources.values()) == {"default"}
    assert set(settings.sources) == set(SETTING_NAMES)


def test_every_setting_is_a_field() -> None:
    for name in SETTING_NAMES:
        assert hasattr(Settings(), name.lower()), name


def test_environment_wins_over_dotenv_which_wins_over_variables_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WORKERS=2\nMAX_ATTEMPTS=3\nRASA_TIMEOUT=5\n")
    (tmp_path / "variables.env").write_text(
        "WORKERS=7\nMAX_ATTEMPTS=9\nSEND_BURST=10\nWPP_VERIFY_TOKEN=from-variables\n"
    )
    files = (str(tmp_path / ".env"), str(tmp_path / "variables.env"))
    settings = load({"WORKERS": "1"}, files)
    assert settings.workers == 1
    assert settings.max_attempts == 3
    assert settings.send_burst == 10
    assert settings.rasa_timeout == 5.0
    assert settings.wpp_verify_token == "from-variables"
    assert settings.sources["WORKERS"] == "env"
    assert settings.sources["MAX_ATTEMPTS"] == ".env"
    assert settings.sources["SEND_BURST"] == "variables.env"
    assert settings.sources["SEND_RATE"] == "default"


def test_files_are_read_from_the_current_directory_without_touching_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "variables.env").write_text("WPP_VERIFY_TOKEN=abc123\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WPP_VERIFY_TOKEN", raising=False)
    settings = load_settings({})
    assert settings.wpp_verify_token == "abc123"
    assert "WPP_VERIFY_TOKEN" not in os.environ


def test_missing_files_are_fine(tmp_path: Path) -> None:
    settings = load({}, (str(tmp_path / "nope.env"),))
    assert settings.sandbox


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WORKERS": "x"}, "WORKERS: expected a whole number ≥ 0, got 'x'"),
        ({"WORKERS": "-1"}, "WORKERS: expected a whole number ≥ 0, got '-1'"),
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS: expected a whole number ≥ 1, got '0'"),
        ({"RASA_TIMEOUT": "soon"}, "RASA_TIMEOUT: expected a number of seconds > 0, got 'soon'"),
        ({"SEND_RATE": "nan"}, "SEND_RATE: expected messages per second ≥ 0 (0 = no pacing)"),
        ({"SEND_RATE": "-1"}, "SEND_RATE: expected messages per second ≥ 0"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE: expected a whole number"),
        ({"SHUTDOWN_GRACE_SECONDS": "-1"}, "SHUTDOWN_GRACE_SECONDS: expected a number"),
        ({"BR_NINTH_DIGIT": "maybe"}, "BR_NINTH_DIGIT: expected true or false, got 'maybe'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: expected text or json, got 'xml'"),
        ({"ANSWER_BACKEND": "rasa"}, "ANSWER_BACKEND=rasa needs RASA_URL"),
        ({"ANSWER_BACKEND": "my bot"}, "ANSWER_BACKEND: expected rasa, echo or package.module"),
        ({"RASA_URL": "localhost:5005"}, "RASA_URL: expected an http:// or https:// URL"),
        ({"DATABASE_URL": "whatsapp.db"}, "DATABASE_URL: expected a SQLAlchemy URL"),
        ({"WPP_API_VERSION": "23"}, "WPP_API_VERSION: expected a Graph version such as v23.0"),
        ({"SERPRO_CLIENT_ID": "123"}, "SERPRO_CLIENT_SECRET: needed when SERPRO_CLIENT_ID is set"),
        ({"WHATSAPP_PROVIDER": "serpro"}, "WHATSAPP_PROVIDER=serpro needs SERPRO_CLIENT_ID"),
        ({"WHATSAPP_PROVIDER": "twilio"}, "WHATSAPP_PROVIDER: expected cloud_api or serpro"),
        ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES: expected a whole number of bytes ≥ 1024"),
        ({"LIST_BUTTON_LABEL": "x" * 21}, "LIST_BUTTON_LABEL: WhatsApp allows at most 20"),
        ({"JOB_LEASE_SECONDS": "0"}, "JOB_LEASE_SECONDS: expected a number of seconds ≥ 1"),
        ({"JOB_LEASE_SECONDS": "0.5"}, "JOB_LEASE_SECONDS: expected a number of seconds ≥ 1"),
    ],
)
def test_a_wrong_setting_is_named_with_what_is_wrong(env: dict[str, str], expected: str) -> None:
    problems = problems_of(env)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of({"WORKERS": "x", "MAX_ATTEMPTS": "y", "LOG_LEVEL": "loud"})
    assert [p.split(":")[0] for p in problems] == ["WORKERS", "MAX_ATTEMPTS", "LOG_LEVEL"]
    with pytest.raises(SettingsError, match=r"WORKERS.*\n.*MAX_ATTEMPTS"):
        load({"WORKERS": "x", "MAX_ATTEMPTS": "y"})


def test_a_database_password_never_appears_in_an_error() -> None:
    problems = problems_of({"DATABASE_URL": "postgres//user:hunter2secret@db/x"})
    assert "hunter2secret" not in "".join(problems)


def test_rasa_url_selects_the_rasa_backend() -> None:
    settings = load({"RASA_URL": "http://localhost:5005/"})
    assert settings.answer_backend == "rasa"
    assert settings.rasa_url == "http://localhost:5005"
    assert load({"ANSWER_BACKEND": "mybot.answers:answer"}).answer_backend == "mybot.answers:answer"


def test_cloud_api_token_leaves_sandbox() -> None:
    settings = load({"WPP_AUTHORIZATION_TOKEN": "EAAG" + "x" * 40})
    assert not settings.sandbox
    assert settings.mode == "Cloud API"
    assert settings.whatsapp_provider == "cloud_api"
    assert settings.playground is False


def test_serpro_alone_is_the_default_provider_and_warns_without_webhook_token() -> None:
    settings = load({"SERPRO_CLIENT_ID": "5561000000000", "SERPRO_CLIENT_SECRET": "s3cr3t-value"})
    assert settings.mode == "SERPRO"
    assert settings.whatsapp_provider == "serpro"
    assert settings.serpro_phone_number_id == "5561000000000"  # defaults to the client id
    assert any("SERPRO_WEBHOOK_TOKEN" in w for w in settings.warnings)
    assert any("SERPRO_WEBHOOK_TOKEN" in m for m in settings.missing_for_production())
    quiet = load(
        {
            "SERPRO_CLIENT_ID": "5561000000000",
            "SERPRO_CLIENT_SECRET": "s3cr3t-value",
            "SERPRO_WEBHOOK_TOKEN": "jwt-token-value",
        }
    )
    assert quiet.warnings == ()


def test_empty_app_secret_is_unset_with_a_warning() -> None:
    settings = load({"WPP_APP_SECRET": ""})
    assert settings.wpp_app_secret is None
    assert any("WPP_APP_SECRET is set but empty" in w for w in settings.warnings)
    assert load({}).warnings == ()


def test_empty_values_mean_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WPP_AUTHORIZATION_TOKEN=\nWORKERS=\n")
    settings = load({}, (str(tmp_path / ".env"),))
    assert settings.sandbox
    assert settings.workers == 4


def test_booleans_and_levels_are_case_insensitive() -> None:
    settings = load({"BR_NINTH_DIGIT": "TRUE", "MASK_CONTACTS": "on", "LOG_LEVEL": "debug"})
    assert settings.br_ninth_digit
    assert settings.mask_contacts
    assert settings.log_level == "DEBUG"


def test_mask_secret_shows_at_most_the_last_four() -> None:
    assert mask_secret("EAAGabcdefghijklmnop1234") == "****1234"
    assert mask_secret("short") == "****"
    assert mask_secret("") == ""
    assert mask_database_url("postgresql://u:pw@h/db") == "postgresql://u:****@h/db"


def test_describe_and_repr_mask_every_secret() -> None:
    secrets = {
        "WPP_AUTHORIZATION_TOKEN": "EAAG-authorization-token-9999",
        "WPP_VERIFY_TOKEN": "verify-token-value-8888",
        "WPP_APP_SECRET": "app-secret-value-7777",
        "SERPRO_CLIENT_ID": "5561000000000",
        "SERPRO_CLIENT_SECRET": "serpro-secret-value-6666",
        "SERPRO_WEBHOOK_TOKEN": "serpro-webhook-token-5555",
        "ADMIN_TOKEN": "admin-token-value-4444",
        "DATABASE_URL": "postgresql+psycopg://user:db-password-3333@localhost/gw",
    }
    settings = load(secrets)
    shown = dict(describe(settings))
    text = repr(settings) + str(shown)
    for name, value in secrets.items():
        if name != "SERPRO_CLIENT_ID":
            assert value not in text, name
    assert shown["WPP_APP_SECRET"] == "****7777"
    assert shown["DATABASE_URL"] == "postgresql+psycopg://user:****@localhost/gw"
    assert set(settings.secrets()) >= {secrets["WPP_APP_SECRET"], secrets["ADMIN_TOKEN"]}


def test_missing_for_production_in_sandbox_names_the_credentials() -> None:
    missing = " ".join(load().missing_for_production())
    for name in ("WPP_AUTHORIZATION_TOKEN", "WPP_VERIFY_TOKEN", "WPP_APP_SECRET"):
        assert name in missing
    complete = load(
        {
            "WPP_AUTHORIZATION_TOKEN": "EAAG" + "x" * 30,
            "WPP_VERIFY_TOKEN": "v" * 20,
            "WPP_APP_SECRET": "s" * 32,
            "WPP_PHONE_NUMBER_IDENTIFIER": "106540352242922",
        }
    )
    assert complete.missing_for_production() == []


def test_a_lease_shorter_than_the_bot_timeout_is_fine_now_that_leases_are_renewed() -> None:
    # Workers renew their jobs' leases while they work (pipeline/lease.py), so a slow bot
    # call no longer needs a lease longer than RASA_TIMEOUT.
    settings = load(
        {"RASA_URL": "http://rasa:5005", "RASA_TIMEOUT": "60", "JOB_LEASE_SECONDS": "5"}
    )
    assert (settings.job_lease_seconds, settings.rasa_timeout) == (5.0, 60.0)


def test_pacing_can_be_turned_off_and_the_pool_and_grace_set() -> None:
    settings = load({"SEND_RATE": "0", "DATABASE_POOL_SIZE": "12", "SHUTDOWN_GRACE_SECONDS": "0"})
    assert (settings.send_rate, settings.database_pool_size) == (0.0, 12)
    assert settings.shutdown_grace_seconds == 0.0
    defaults = load()
    assert (defaults.database_pool_size, defaults.shutdown_grace_seconds) == (None, 20.0)
    assert defaults.job_lease_seconds == 30.0
