"""Settings in a Django project: Django's settings first, then the environment; the store on
the project's own database unless DATABASE_URL names one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from whatsapp_api_integration.integrations.django.conf import (
    load_gateway_settings,
    sqlalchemy_url,
)
from whatsapp_api_integration.settings import SettingsError


def test_django_settings_come_first_and_the_environment_fills_the_rest(settings: Any) -> None:
    settings.WPP_VERIFY_TOKEN = "from-django-settings-1234"
    settings.BR_NINTH_DIGIT = True
    settings.MAX_ATTEMPTS = 3
    environ = {
        "WPP_VERIFY_TOKEN": "from-the-environment-5678",
        "RASA_TIMEOUT": "12.5",
        "LIST_BUTTON_LABEL": "Ver opções",
    }
    loaded = load_gateway_settings(environ, env_files=())
    assert loaded.wpp_verify_token == "from-django-settings-1234"
    assert (loaded.br_ninth_digit, loaded.max_attempts) == (True, 3)
    assert (loaded.rasa_timeout, loaded.list_button_label) == (12.5, "Ver opções")
    assert loaded.sources["WPP_VERIFY_TOKEN"] == "Django settings"
    assert loaded.sources["RASA_TIMEOUT"] == "env"
    assert loaded.answer_backend == "django_project.bot:answer"


def test_a_setting_set_to_none_in_django_falls_back_to_the_environment(settings: Any) -> None:
    settings.WPP_VERIFY_TOKEN = None
    loaded = load_gateway_settings({"WPP_VERIFY_TOKEN": "from-env-0000"}, env_files=())
    assert loaded.wpp_verify_token == "from-env-0000"


def test_env_files_are_read_after_the_environment(settings: Any, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RASA_TIMEOUT=7\nWPP_VERIFY_TOKEN=from-file\n")
    loaded = load_gateway_settings({}, env_files=(env_file,))
    assert loaded.rasa_timeout == 7
    assert loaded.wpp_verify_token == "verify-token-for-tests-1234"  # Django's wins


def test_without_database_url_the_store_is_the_projects_database(settings: Any) -> None:
    project_db = Path(settings.DATABASES["default"]["NAME"]).resolve()
    loaded = load_gateway_settings({}, env_files=())
    assert loaded.database_url == f"sqlite:///{project_db}"
    assert loaded.sources["DATABASE_URL"] == "DATABASES['default']"


@pytest.mark.parametrize("where", ["django", "env"])
def test_database_url_names_another_store(settings: Any, where: str) -> None:
    url = "postgres://gateway:s3cret@db.internal:5433/whatsapp"  # dj-database-url's scheme
    environ = {}
    if where == "django":
        settings.DATABASE_URL = url
    else:
        environ["DATABASE_URL"] = url
    loaded = load_gateway_settings(environ, env_files=())
    assert loaded.database_url == "postgresql://gateway:s3cret@db.internal:5433/whatsapp"


def test_a_postgresql_database_becomes_a_sqlalchemy_url() -> None:
    url = sqlalchemy_url(
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "ej",
            "USER": "ej",
            "PASSWORD": "p@ss:w/rd",
            "HOST": "postgres",
            "PORT": "5432",
            "OPTIONS": {"sslmode": "require", "pool": True, "isolation_level": 1},
        }
    )
    parsed = make_url(url)
    assert parsed.drivername == "postgresql"
    assert (parsed.username, parsed.password) == ("ej", "p@ss:w/rd")
    assert (parsed.host, parsed.port, parsed.database) == ("postgres", 5432, "ej")
    assert dict(parsed.query) == {"sslmode": "require"}


def test_a_postgresql_database_on_a_local_socket_keeps_no_host() -> None:
    url = sqlalchemy_url({"ENGINE": "django.db.backends.postgresql", "NAME": "ej"})
    assert url == "postgresql:///ej"


@pytest.mark.parametrize(
    ("database", "says"),
    [
        ({"ENGINE": "django.db.backends.mysql", "NAME": "x"}, "django.db.backends.mysql"),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}, "in-memory"),
        (
            {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:m?mode=memory&cache=shared"},
            "in-memory",
        ),
    ],
)
def test_a_database_the_store_cannot_use_is_named(database: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        sqlalchemy_url(database, "default")
    [problem] = raised.value.problems
    assert problem.startswith("DATABASE_URL: DATABASES['default']")
    assert says in problem
    assert "set DATABASE_URL" in problem


def test_check_config_shows_each_source_and_masks_secrets(settings: Any, monkeypatch: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setenv("RASA_TIMEOUT", "9")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    out = StringIO()
    call_command("whatsapp_check_config", stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()}
    assert lines["WPP_VERIFY_TOKEN"].endswith("Django settings")
    assert lines["RASA_TIMEOUT"].split()[1:] == ["9.0", "env"]
    assert lines["DATABASE_URL"].endswith("DATABASES['default']")
    assert "app-secret-for-tests-abcdef987654" not in out.getvalue()
    assert "****7654" in lines["WPP_APP_SECRET"]


def test_the_whatsapp_gateway_dict_takes_names_the_project_already_uses(
    settings: Any, tmp_path: Path
) -> None:
    """A project whose own DATABASE_URL is MySQL and LOG_FORMAT a format string keeps them;
    the gateway reads its own in WHATSAPP_GATEWAY."""
    settings.DATABASE_URL = "mysql://project@db/project"
    settings.LOG_FORMAT = "%(asctime)s %(message)s"
    settings.WHATSAPP_GATEWAY = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "LOG_FORMAT": "json",
        "WORKERS": 1,
    }
    loaded = load_gateway_settings({}, env_files=())
    assert loaded.database_url == f"sqlite:///{tmp_path / 'store.db'}"
    assert (loaded.log_format, loaded.workers) == ("json", 1)


def test_log_settings_at_the_top_level_are_the_projects_own(settings: Any) -> None:
    settings.LOG_FORMAT = "%(levelname)s %(message)s"
    settings.LOG_LEVEL = "verbose"
    loaded = load_gateway_settings({"LOG_FORMAT": "json"}, env_files=())
    assert (loaded.log_format, loaded.log_level) == ("json", "INFO")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not a dict", "WHATSAPP_GATEWAY (Django settings): expected a dict of gateway settings"),
        ({"WPP_TOKEN": "x"}, "WHATSAPP_GATEWAY['WPP_TOKEN'] (Django settings): not a setting"),
        (
            {"WORKERS": [1]},
            "WHATSAPP_GATEWAY['WORKERS'] (Django settings): expected a string, number or boolean",
        ),
    ],
)
def test_a_wrong_whatsapp_gateway_dict_is_named(settings: Any, value: Any, problem: str) -> None:
    settings.WHATSAPP_GATEWAY = value
    with pytest.raises(SettingsError) as raised:
        load_gateway_settings({}, env_files=())
    [reported] = raised.value.problems
    assert reported.startswith(problem)
