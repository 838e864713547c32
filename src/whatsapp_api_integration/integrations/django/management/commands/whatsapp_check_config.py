"""`python manage.py whatsapp_check_config`: every gateway setting as this project sees it,
where it came from (Django settings, the environment, .env, the project's database or the
default), and what a real deployment still lacks. Secrets are masked."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from whatsapp_api_integration.integrations.django.conf import load_gateway_settings
from whatsapp_api_integration.settings import SettingsError, describe


class Command(BaseCommand):
    help = "Show the WhatsApp gateway's settings, their sources, and what is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            settings = load_gateway_settings()
        except SettingsError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Mode: {settings.mode}")
        rows = describe(settings)
        width = max(len(name) for name, _ in rows)
        value_width = min(48, max(len(value) for _, value in rows))
        self.stdout.write(f"{'SETTING':<{width}}  {'VALUE':<{value_width}}  SOURCE")
        for name, value in rows:
            source = settings.sources.get(name, "default")
            self.stdout.write(f"{name:<{width}}  {value or '-':<{value_width}}  {source}")
        missing = [m for m in settings.missing_for_production() if not m.startswith("ADMIN_")]
        if missing:
            self.stdout.write("Missing for production:")
            for line in missing:
                self.stdout.write(f"  - {line}")
        for line in settings.warnings:
            self.stdout.write(f"Warning: {line}")
