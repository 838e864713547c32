"""The original project's module name, kept so its users' habits still work:

    >>> from serpro_api_client import register_webhook          # from the repository's root
    >>> from whatsapp_api_integration.serpro_api_client import register_webhook
    >>> register_webhook()          # registers RASA_WEBHOOK_URL at SERPRO

Everything comes from the gateway's settings (environment, `.env`, `variables.env`): the
SERPRO credentials, `SERPRO_API_BASE_URL`, `SERPRO_WEBHOOK_FORM` (`json`, the default, sends
`{"uri", "jwtToken"}` with `SERPRO_WEBHOOK_TOKEN` as the jwtToken; `text` sends the bare URL as
the original did) and the store, where the access token is shared with the running gateway.
The `whatsapp-gateway serpro webhook ...` commands call these functions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from whatsapp_api_integration.providers.serpro import SerproClient, WebhookForm
from whatsapp_api_integration.settings import Settings, SettingsError, load_settings

logger = logging.getLogger(__name__)

WEBHOOK_ROUTE = "/webhooks/whatsapp/webhook"


@contextlib.contextmanager
def open_client(settings: Settings | None = None) -> Iterator[SerproClient]:
    """A SerproClient configured from the settings, sharing the gateway store's token."""
    from whatsapp_api_integration.store import Store

    settings = settings or load_settings()
    if not settings.serpro_configured:
        raise SettingsError(
            ["SERPRO_CLIENT_ID and SERPRO_CLIENT_SECRET: set both to call SERPRO's API"]
        )
    assert settings.serpro_client_id is not None
    assert settings.serpro_client_secret is not None
    store = Store(settings.database_url)
    try:
        store.migrate()
        with SerproClient(
            settings.serpro_client_id,
            settings.serpro_client_secret,
            base_url=settings.serpro_api_base_url,
            phone_number_id=settings.serpro_phone_number_id,
            waba_id=settings.serpro_waba_id,
            token_store=store,
            webhook_form=settings.serpro_webhook_form,
            mark_read_path=settings.serpro_mark_read_path,
        ) as client:
            yield client
    finally:
        store.close()


def webhook_warnings(url: str, form: WebhookForm, settings: Settings) -> list[str]:
    """What is likely wrong with a registration, said before SERPRO is called."""
    warnings = []
    if not url.startswith("https://"):
        warnings.append(f"{url} is not https://; SERPRO may refuse it or send in the clear")
    if not url.rstrip("/").endswith(WEBHOOK_ROUTE):
        warnings.append(f"{url} does not end with {WEBHOOK_ROUTE}, the gateway's webhook route")
    if form == "text" and settings.serpro_webhook_token:
        warnings.append(
            "SERPRO_WEBHOOK_FORM=text cannot register SERPRO_WEBHOOK_TOKEN, so SERPRO cannot "
            "send it back and the gateway will refuse its calls with 401: use the json form, "
            "or unset SERPRO_WEBHOOK_TOKEN"
        )
    return warnings


def _webhook_url(url: str | None, settings: Settings) -> str:
    url = url or settings.rasa_webhook_url
    if not url:
        raise SettingsError(
            [
                "RASA_WEBHOOK_URL: the gateway's public webhook URL to register at SERPRO, "
                f"e.g. https://bot.example.gov.br{WEBHOOK_ROUTE} (or pass the URL)"
            ]
        )
    return url


def register_webhook(
    url: str | None = None,
    *,
    form: WebhookForm | None = None,
    jwt_token: str | None = None,
    settings: Settings | None = None,
) -> Any:
    """Register `url` (default RASA_WEBHOOK_URL) as the webhook SERPRO calls; SERPRO's answer.

    `form` defaults to SERPRO_WEBHOOK_FORM; `jwt_token` to SERPRO_WEBHOOK_TOKEN (json form)."""
    settings = settings or load_settings()
    target = _webhook_url(url, settings)
    chosen: WebhookForm = form or settings.serpro_webhook_form
    for warning in webhook_warnings(target, chosen, settings):
        logger.warning(warning)
    token = jwt_token if jwt_token is not None else settings.serpro_webhook_token
    with open_client(settings) as client:
        return client.register_webhook(target, jwt_token=token, form=chosen)


def list_webhooks(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    with open_client(settings) as client:
        return client.list_webhooks()


def update_webhook(
    webhook_id: str,
    url: str | None = None,
    *,
    jwt_token: str | None = None,
    settings: Settings | None = None,
) -> Any:
    settings = settings or load_settings()
    target = _webhook_url(url, settings)
    token = jwt_token if jwt_token is not None else settings.serpro_webhook_token
    with open_client(settings) as client:
        return client.update_webhook(webhook_id, target, jwt_token=token)


def delete_webhook(webhook_id: str | None = None, *, settings: Settings | None = None) -> Any:
    """Delete one webhook, or without an id the number's webhook (`DELETE …/webhook`)."""
    with open_client(settings) as client:
        return client.delete_webhook(webhook_id)


class SerproApiClient:
    """The original's class name: `SerproApiClient().register_webhook()` still works."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()

    def register_webhook(self, url: str | None = None) -> Any:
        return register_webhook(url, settings=self.settings)

    def list_webhooks(self) -> list[dict[str, Any]]:
        return list_webhooks(settings=self.settings)

    def delete_webhook(self, webhook_id: str | None = None) -> Any:
        return delete_webhook(webhook_id, settings=self.settings)


__all__ = [
    "SerproApiClient",
    "delete_webhook",
    "list_webhooks",
    "open_client",
    "register_webhook",
    "update_webhook",
]
