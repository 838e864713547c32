"""The app's configuration: its system checks, and `manage.py migrate` migrating the store."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.apps import AppConfig
from django.core.management.base import CommandError
from django.core.signals import setting_changed
from django.db.models.signals import post_migrate

log = logging.getLogger(__name__)


class WhatsAppGatewayConfig(AppConfig):
    name = "whatsapp_api_integration.integrations.django"
    label = "whatsapp_gateway"
    verbose_name = "WhatsApp gateway"

    def ready(self) -> None:
        # Nothing is opened here (see runtime.py): only receivers and checks are registered.
        from whatsapp_api_integration.integrations.django import checks, runtime

        checks.register()
        setting_changed.connect(runtime.on_setting_changed, dispatch_uid="whatsapp_gateway")
        post_migrate.connect(migrate_store, sender=self, dispatch_uid="whatsapp_gateway")
        hide_tokens_in_access_log()


def hide_tokens_in_access_log() -> None:
    """`runserver` logs each request line with its query string, and Meta's handshake sends
    `hub.verify_token` there (DESIGN.md §3): mask it, once."""
    from whatsapp_api_integration.logging_setup import RedactingFilter, Redactor

    access_log = logging.getLogger("django.server")
    if not any(isinstance(f, RedactingFilter) for f in access_log.filters):
        access_log.addFilter(RedactingFilter(Redactor()))


def migrate_store(
    *, using: str = "default", verbosity: int = 1, stdout: Any = None, **kwargs: Any
) -> None:
    """After `manage.py migrate` on the database the store lives in, apply the store's own
    (Alembic) migrations there too. A store named by DATABASE_URL is migrated along with
    `migrate` on the default database."""
    from whatsapp_api_integration.integrations.django.conf import (
        DATABASE_ALIAS,
        database_alias_for_store,
        load_gateway_settings,
    )
    from whatsapp_api_integration.settings import mask_database_url
    from whatsapp_api_integration.store import Store

    settings = load_gateway_settings()
    if using != (database_alias_for_store(settings) or DATABASE_ALIAS):
        return
    try:
        store = Store(settings.database_url)
        try:
            store.migrate()
            _current, description = store.ready()
        finally:
            store.close()
    except Exception as error:
        raise CommandError(
            f"the WhatsApp gateway's store at {mask_database_url(settings.database_url)} "
            f"could not be migrated: {error}"
        ) from error
    if verbosity >= 1:
        (stdout or sys.stdout).write(f"  WhatsApp gateway store: {description}\n")
