"""`python manage.py whatsapp_migrate`: bring the gateway store's tables up to date.

`manage.py migrate` does it too (after Django's own migrations); this command is for a store
that lives apart (DATABASE_URL), or to check it with `--check`. The store's migrations are
Alembic's, shipped in the package, never Django's: the same tables serve the gateway, the
Rasa channel and this app, so one set of migrations must build them everywhere.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from whatsapp_api_integration.integrations.django.conf import load_gateway_settings
from whatsapp_api_integration.settings import SettingsError, mask_database_url


class Command(BaseCommand):
    help = "Apply the WhatsApp gateway store's migrations (Alembic) to its database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="change nothing; exit 1 when the store is not at the latest migration",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from whatsapp_api_integration.store import Store

        try:
            settings = load_gateway_settings()
        except SettingsError as error:
            raise CommandError(str(error)) from None
        where = mask_database_url(settings.database_url)
        try:
            store = Store(settings.database_url)
            try:
                if not options["check"]:
                    store.migrate()
                current, description = store.ready()
            finally:
                store.close()
        except Exception as error:
            raise CommandError(f"the store at {where} cannot be migrated: {error}") from None
        self.stdout.write(f"{where}: {description}")
        if not current:
            raise CommandError("the store's migrations are not current; run whatsapp_migrate")
