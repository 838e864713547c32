"""Django system checks (`manage.py check`, and before `runserver` and `migrate`): the
gateway's settings, each problem naming its setting; with `check --deploy`, what a real
deployment still lacks."""

from __future__ import annotations

from typing import Any

from django.core import checks

from whatsapp_api_integration.settings import SettingsError

SUPPORTED_SCHEMES = ("sqlite", "postgresql")


def register() -> None:
    checks.register(check_settings, "whatsapp_gateway")
    checks.register(check_deployment, "whatsapp_gateway", deploy=True)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from whatsapp_api_integration.integrations.django.conf import load_gateway_settings

    try:
        settings = load_gateway_settings()
    except SettingsError as error:
        return [
            checks.Error(
                problem,
                hint="Set it in the Django settings module or in the environment.",
                id="whatsapp_gateway.E001",
            )
            for problem in error.problems
        ]
    messages: list[checks.CheckMessage] = []
    scheme = settings.database_url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in SUPPORTED_SCHEMES:
        messages.append(
            checks.Error(
                f"DATABASE_URL: the store needs PostgreSQL or SQLite, got {scheme!r}",
                hint="e.g. DATABASE_URL = 'postgresql://user:password@host/db'",
                id="whatsapp_gateway.E002",
            )
        )
    messages.extend(
        checks.Warning(warning, id="whatsapp_gateway.W001") for warning in settings.warnings
    )
    return messages


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from whatsapp_api_integration.integrations.django.conf import load_gateway_settings

    try:
        settings = load_gateway_settings()
    except SettingsError:
        return []  # check_settings reports these
    return [
        checks.Warning(line, id="whatsapp_gateway.W002")
        for line in settings.missing_for_production()
        if not line.startswith("ADMIN_TOKEN")  # no playground or ops pages in the Django app
    ]
