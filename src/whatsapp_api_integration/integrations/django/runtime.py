"""One gateway per Django process, built at the first request to the app's routes.

Built lazily, never in `AppConfig.ready()`: `ready()` runs in every management command
(`migrate`, `collectstatic` in an image build …) and in a pre-forking server's master, where
neither a database connection nor worker threads belong. The first request is served by the
process that will serve the rest, after any fork.

The web process starts `WORKERS` worker threads (0: none, and `manage.py whatsapp_worker`
works the jobs), as the gateway's own server does. A change of a gateway setting through
`override_settings` (Django's `setting_changed` signal) closes the gateway, so the next
request builds one with the new settings.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.integrations.django.conf import NAMESPACE, load_gateway_settings
from whatsapp_api_integration.settings import SETTING_NAMES, Settings, build_gateway

if TYPE_CHECKING:
    from whatsapp_api_integration.backends import Backend
    from whatsapp_api_integration.core.contract import IncomingMessage
    from whatsapp_api_integration.pipeline.gateway import Gateway

log = logging.getLogger(__name__)

_lock = threading.Lock()
_current: tuple[Settings, Gateway] | None = None


class DjangoBackend:
    """The configured backend, called the way Django calls a view: database connections that
    are broken or past CONN_MAX_AGE are closed before and after each call, since a worker
    thread, unlike a request, has no request_started/finished signals to do it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        from django.db import close_old_connections

        close_old_connections()
        try:
            return self.backend.answer(incoming)
        finally:
            close_old_connections()

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


def build_django_gateway(settings: Settings, *, workers: int | None = None) -> Gateway:
    """A gateway for these settings whose backend runs like Django code (DjangoBackend)."""
    from whatsapp_api_integration.backends import load_backend

    if workers is not None:
        settings = dataclasses.replace(settings, workers=workers)
    backend = load_backend(
        settings.answer_backend, rasa_url=settings.rasa_url, timeout=settings.rasa_timeout
    )
    return build_gateway(settings, backend=DjangoBackend(backend))


def current() -> tuple[Settings, Gateway]:
    """This process's settings and gateway, built (and its worker threads started) once.

    Raises SettingsError for invalid settings and the store's error when it cannot be opened;
    the next call tries again.
    """
    global _current
    with _lock:
        if _current is None:
            settings = load_gateway_settings()
            gateway = build_django_gateway(settings)
            for warning in settings.warnings:
                log.warning(warning)
            if settings.workers > 0:
                gateway.start()
                # Let the jobs in hand finish when the process exits (a job cut short is
                # taken back by another worker once its lease expires).
                atexit.register(close_gateway)
                log.info("started %d worker thread(s) in this Django process", settings.workers)
            _current = (settings, gateway)
        return _current


def close_gateway() -> None:
    """Stop this process's worker threads and release the store (a new one is built on the
    next request)."""
    global _current
    with _lock:
        state, _current = _current, None
    if state is not None:
        state[1].close()


def on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Django's `setting_changed` receiver (override_settings, pytest-django's `settings`)."""
    if setting in SETTING_NAMES or setting in ("DATABASES", NAMESPACE):
        close_gateway()
