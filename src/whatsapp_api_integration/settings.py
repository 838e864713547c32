"""The gateway's settings (DESIGN §3): read, validated and described in one place.

Values come from the environment, then `.env`, then `variables.env` (the original project's
file); the first source that names a setting wins, and files never change `os.environ`.
Every problem is collected before anything starts, so one run of `whatsapp-gateway
check-config` lists them all, each naming its setting, what is wrong and what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from whatsapp_api_integration.backends import Backend
    from whatsapp_api_integration.pipeline.gateway import Gateway
    from whatsapp_api_integration.providers import Sender
    from whatsapp_api_integration.providers.serpro import TokenStore

Provider = Literal["cloud_api", "serpro"]
LogFormat = Literal["text", "json"]
SerproWebhookForm = Literal["json", "text"]
Mode = Literal["sandbox", "Cloud API", "SERPRO", "Cloud API + SERPRO"]

DEFAULT_ENV_FILES: tuple[str, ...] = (".env", "variables.env")
DEFAULT_API_VERSION = "v23.0"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Every setting the gateway reads, in the order `check-config` shows them.
SETTING_NAMES: tuple[str, ...] = (
    "WPP_AUTHORIZATION_TOKEN",
    "WPP_VERIFY_TOKEN",
    "WPP_PHONE_NUMBER_IDENTIFIER",
    "WPP_APP_SECRET",
    "WPP_API_VERSION",
    "WPP_API_BASE_URL",
    "SERPRO_CLIENT_ID",
    "SERPRO_CLIENT_SECRET",
    "SERPRO_WABA_ID",
    "SERPRO_PHONE_NUMBER_ID",
    "SERPRO_API_BASE_URL",
    "SERPRO_WEBHOOK_TOKEN",
    "SERPRO_WEBHOOK_FORM",
    "SERPRO_MARK_READ_PATH",
    "RASA_WEBHOOK_URL",
    "WHATSAPP_PROVIDER",
    "ANSWER_BACKEND",
    "RASA_URL",
    "RASA_TIMEOUT",
    "RASA_FAILED_DELIVERY_INTENT",
    "RASA_API_TOKEN",
    "PROACTIVE_TOKEN",
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "STORE_FLUSH",
    "WORKERS",
    "MAX_ATTEMPTS",
    "JOB_LEASE_SECONDS",
    "SHUTDOWN_GRACE_SECONDS",
    "SEND_RATE",
    "SEND_BURST",
    "BR_NINTH_DIGIT",
    "LIST_BUTTON_LABEL",
    "INTERACTIVE_FALLBACK_BODY",
    "MORE_OPTIONS_BODY",
    "MAX_BODY_BYTES",
    "PLAYGROUND",
    "ADMIN_TOKEN",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "MASK_CONTACTS",
)


def is_secret_name(name: str) -> bool:
    return name.endswith(("_TOKEN", "_SECRET"))


def mask_secret(value: str | None) -> str:
    """At most the last 4 characters, and none of a short secret (4 of 8 is half of it)."""
    if not value:
        return ""
    if len(value) < 12:
        return "****"
    return "****" + value[-4:]


def mask_database_url(url: str) -> str:
    """The URL with its password hidden (a DATABASE_URL may carry one)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    if "@" not in rest:
        return url
    user_info, _, host = rest.rpartition("@")
    user, colon, _password = user_info.partition(":")
    return f"{scheme}{separator}{user}{':****' if colon else ''}@{host}"


class SettingsError(ValueError):
    """Invalid settings; `problems` holds one line per problem, each naming its setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Settings:
    wpp_authorization_token: str | None = None
    wpp_verify_token: str | None = None
    wpp_phone_number_identifier: str | None = None
    wpp_app_secret: str | None = None
    wpp_api_version: str = DEFAULT_API_VERSION
    wpp_api_base_url: str = "https://graph.facebook.com"
    serpro_client_id: str | None = None
    serpro_client_secret: str | None = None
    serpro_waba_id: str | None = None
    serpro_phone_number_id: str | None = None
    serpro_api_base_url: str = "https://api.whatsapp.serpro.gov.br"
    serpro_webhook_token: str | None = None
    serpro_webhook_form: SerproWebhookForm = "json"
    serpro_mark_read_path: str = "/requisicao/mensagem/status"
    rasa_webhook_url: str | None = None
    whatsapp_provider: Provider = "cloud_api"
    answer_backend: str = "echo"
    rasa_url: str | None = None
    rasa_timeout: float = 30.0
    rasa_failed_delivery_intent: str | None = None  # off when unset
    rasa_api_token: str | None = None  # Rasa's --auth-token, for its HTTP API
    proactive_token: str | None = None  # bearer of POST /webhooks/whatsapp/proactive
    database_url: str = "sqlite:///whatsapp_gateway.db"
    database_pool_size: int | None = None  # None: derived from the threads (store.engine)
    store_flush: str = "webhooks"  # which commits wait for the disk: all, webhooks, none
    workers: int = 4
    max_attempts: int = 8
    job_lease_seconds: float = 30.0
    shutdown_grace_seconds: float = 20.0
    send_rate: float = 80.0  # 0: no pacing
    send_burst: int = 80
    br_ninth_digit: bool = False
    list_button_label: str = "Opções"
    interactive_fallback_body: str = "Escolha uma opção:"
    more_options_body: str = "Mais opções:"
    max_body_bytes: int = 4 * 1024 * 1024
    playground: bool = True
    admin_token: str | None = None
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    mask_contacts: bool = False
    # Where each setting came from ("env", ".env", "variables.env" or "default").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Things worth saying at start-up that do not stop it.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __repr__(self) -> str:  # never show a secret, even in a traceback
        shown = ", ".join(f"{name}={value!r}" for name, value in describe(self))
        return f"Settings({shown})"

    @property
    def cloud_api_configured(self) -> bool:
        return bool(self.wpp_authorization_token)

    @property
    def serpro_configured(self) -> bool:
        return bool(self.serpro_client_id and self.serpro_client_secret)

    @property
    def sandbox(self) -> bool:
        """No provider credentials: sends are recorded, not made."""
        return not self.cloud_api_configured and not self.serpro_configured

    @property
    def mode(self) -> Mode:
        if self.sandbox:
            return "sandbox"
        if self.cloud_api_configured and self.serpro_configured:
            return "Cloud API + SERPRO"
        return "Cloud API" if self.cloud_api_configured else "SERPRO"

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the log redaction filter."""
        values = (getattr(self, name.lower()) for name in SETTING_NAMES if is_secret_name(name))
        return tuple(v for v in values if v)

    def missing_for_production(self) -> list[str]:
        """What a real deployment still needs, one line each (empty when nothing)."""
        missing: list[str] = []
        if self.sandbox:
            missing.append(
                "WPP_AUTHORIZATION_TOKEN (Cloud API) or SERPRO_CLIENT_ID + "
                "SERPRO_CLIENT_SECRET: without them replies are recorded, not sent (sandbox)"
            )
        if not self.serpro_configured or self.cloud_api_configured:
            if not self.wpp_verify_token:
                missing.append("WPP_VERIFY_TOKEN: Meta's webhook handshake is refused without it")
            if not self.wpp_app_secret:
                missing.append(
                    "WPP_APP_SECRET: without it anyone can post forged messages to the webhook"
                )
            if not self.wpp_phone_number_identifier:
                missing.append(
                    "WPP_PHONE_NUMBER_IDENTIFIER: the number proactive messages are sent from"
                )
        if self.serpro_configured and not self.serpro_webhook_token:
            missing.append(
                "SERPRO_WEBHOOK_TOKEN: without it SERPRO's webhook calls are not authenticated"
            )
        if self.serpro_configured and not self.rasa_webhook_url:
            missing.append(
                "RASA_WEBHOOK_URL: the public webhook URL `whatsapp-gateway serpro webhook "
                "register` registers at SERPRO"
            )
        if self.playground and not self.sandbox and not self.admin_token:
            missing.append("ADMIN_TOKEN: the playground is on outside sandbox")
        return missing


def describe(settings: Settings) -> list[tuple[str, str]]:
    """(NAME, value as it may be shown) for every setting: secrets masked."""
    shown: list[tuple[str, str]] = []
    for name in SETTING_NAMES:
        value = getattr(settings, name.lower())
        if value is None:
            text = ""
        elif is_secret_name(name):
            text = mask_secret(str(value))
        elif name == "DATABASE_URL":
            text = mask_database_url(str(value))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        shown.append((name, text))
    return shown


# ---- reading ---------------------------------------------------------------------------

T = TypeVar("T")


class _Reader:
    """Looks names up in the sources in order and collects problems instead of raising."""

    def __init__(self, layers: Sequence[tuple[str, Mapping[str, str | None]]]) -> None:
        self.layers = layers
        self.sources: dict[str, str] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def raw(self, name: str) -> str | None:
        """The value as written (stripped), or None when no source names it."""
        for source, values in self.layers:
            if name in values:
                self.sources[name] = source
                value = values[name]
                return "" if value is None else value.strip()
        self.sources[name] = "default"
        return None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if not value:  # an empty value means unset, as in the original's .env
            if value == "":
                self.sources[name] += " (empty)"
            return default
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        value = self.text(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            self.problems.append(f"{name}: expected {expected}, got {value!r}")
            return default

    def url(self, name: str, default: str | None = None) -> str | None:
        value = self.text(name, default)
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            self.problems.append(f"{name}: expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/") if value else value


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        number = int(text)
        if number < minimum:
            raise ValueError(text)
        return number

    return parse


def _non_negative_number(text: str) -> float:
    number = float(text)
    if not number >= 0 or number == float("inf"):
        raise ValueError(text)
    return number


def _positive_number(text: str) -> float:
    number = float(text)
    if not number > 0 or number == float("inf"):
        raise ValueError(text)
    return number


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _at_least(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        number = _positive_number(text)
        if number < minimum:
            raise ValueError(text)
        return number

    return parse


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(text)
        return text.lower()

    return parse


def _provider(text: str) -> Provider:
    lowered = text.lower()
    if lowered == "cloud_api":
        return "cloud_api"
    if lowered == "serpro":
        return "serpro"
    raise ValueError(text)


def _webhook_form(text: str) -> SerproWebhookForm:
    lowered = text.lower()
    if lowered == "json":
        return "json"
    if lowered == "text":
        return "text"
    raise ValueError(text)


def _request_path(text: str) -> str:
    if not re.fullmatch(r"/?[\w\-./]+", text) or ".." in text:
        raise ValueError(text)
    return "/" + text.strip("/")


def _log_format(text: str) -> LogFormat:
    lowered = text.lower()
    if lowered == "text":
        return "text"
    if lowered == "json":
        return "json"
    raise ValueError(text)


_CALLABLE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _read_files(
    env_files: Iterable[str | os.PathLike[str]],
) -> list[tuple[str, dict[str, str | None]]]:
    from dotenv import dotenv_values

    layers: list[tuple[str, dict[str, str | None]]] = []
    for path in env_files:
        if Path(path).is_file():
            layers.append((Path(path).name, dict(dotenv_values(path))))
    return layers


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_files: Iterable[str | os.PathLike[str]] = DEFAULT_ENV_FILES,
) -> Settings:
    """Read and validate every setting; raise SettingsError listing every problem."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    reader = _Reader([("env", dict(env)), *_read_files(env_files)])
    problems, warnings = reader.problems, reader.warnings

    token = reader.text("WPP_AUTHORIZATION_TOKEN")
    app_secret_raw = reader.raw("WPP_APP_SECRET")
    if app_secret_raw == "":
        warnings.append(
            "WPP_APP_SECRET is set but empty: treated as unset, so webhook signatures are NOT "
            "checked; set it to the app secret from Meta's App Dashboard, or remove the line"
        )
    serpro_id = reader.text("SERPRO_CLIENT_ID")
    serpro_secret = reader.text("SERPRO_CLIENT_SECRET")
    if bool(serpro_id) != bool(serpro_secret):
        present, absent = (
            ("SERPRO_CLIENT_ID", "SERPRO_CLIENT_SECRET")
            if serpro_id
            else ("SERPRO_CLIENT_SECRET", "SERPRO_CLIENT_ID")
        )
        problems.append(
            f"{absent}: needed when {present} is set (both are SERPRO's OAuth credentials)"
        )
    serpro = bool(serpro_id and serpro_secret)
    serpro_webhook_token = reader.text("SERPRO_WEBHOOK_TOKEN")
    if serpro and not serpro_webhook_token:
        warnings.append(
            "SERPRO is configured without SERPRO_WEBHOOK_TOKEN: SERPRO's webhook calls are NOT "
            "authenticated; set SERPRO_WEBHOOK_TOKEN (registered at SERPRO as jwtToken)"
        )
    sandbox = not token and not serpro

    provider_default: Provider = "serpro" if serpro and not token else "cloud_api"
    provider = reader.parsed(
        "WHATSAPP_PROVIDER", provider_default, _provider, "cloud_api or serpro"
    )
    if provider == "serpro" and not serpro:
        problems.append("WHATSAPP_PROVIDER=serpro needs SERPRO_CLIENT_ID and SERPRO_CLIENT_SECRET")
    if provider == "cloud_api" and serpro and not token:
        problems.append("WHATSAPP_PROVIDER=cloud_api needs WPP_AUTHORIZATION_TOKEN")

    rasa_url = reader.url("RASA_URL")
    backend = reader.text("ANSWER_BACKEND", "rasa" if rasa_url else "echo") or "echo"
    if backend == "rasa" and not rasa_url:
        problems.append("ANSWER_BACKEND=rasa needs RASA_URL (e.g. RASA_URL=http://localhost:5005)")
    elif backend not in ("rasa", "echo") and not _CALLABLE_SPEC.match(backend):
        problems.append(
            f"ANSWER_BACKEND: expected rasa, echo or package.module:callable, got {backend!r}"
        )

    failed_intent = reader.text("RASA_FAILED_DELIVERY_INTENT")
    if failed_intent and not rasa_url:
        problems.append(
            "RASA_FAILED_DELIVERY_INTENT needs RASA_URL: the failure is told to Rasa's HTTP API "
            "(rasa run --enable-api), e.g. RASA_URL=http://localhost:5005"
        )

    database_url = reader.text("DATABASE_URL", Settings.database_url) or Settings.database_url
    if not re.match(r"^[A-Za-z][\w+.-]*://", database_url):
        problems.append(
            "DATABASE_URL: expected a SQLAlchemy URL such as sqlite:///whatsapp_gateway.db or "
            f"postgresql+psycopg://user:password@host/db, got {mask_database_url(database_url)!r}"
        )

    api_version = reader.text("WPP_API_VERSION", DEFAULT_API_VERSION) or DEFAULT_API_VERSION
    if not re.match(r"^v\d+\.\d+$", api_version):
        problems.append(
            f"WPP_API_VERSION: expected a Graph version such as v23.0, got {api_version!r}"
        )

    settings = Settings(
        wpp_authorization_token=token,
        wpp_verify_token=reader.text("WPP_VERIFY_TOKEN"),
        wpp_phone_number_identifier=reader.text("WPP_PHONE_NUMBER_IDENTIFIER"),
        wpp_app_secret=app_secret_raw or None,
        wpp_api_version=api_version,
        wpp_api_base_url=reader.url("WPP_API_BASE_URL", Settings.wpp_api_base_url)
        or Settings.wpp_api_base_url,
        serpro_client_id=serpro_id,
        serpro_client_secret=serpro_secret,
        serpro_waba_id=reader.text("SERPRO_WABA_ID"),
        serpro_phone_number_id=reader.text("SERPRO_PHONE_NUMBER_ID", serpro_id),
        serpro_api_base_url=reader.url("SERPRO_API_BASE_URL", Settings.serpro_api_base_url)
        or Settings.serpro_api_base_url,
        serpro_webhook_token=serpro_webhook_token,
        serpro_webhook_form=reader.parsed(
            "SERPRO_WEBHOOK_FORM", "json", _webhook_form, "json or text"
        ),
        serpro_mark_read_path=reader.parsed(
            "SERPRO_MARK_READ_PATH",
            Settings.serpro_mark_read_path,
            _request_path,
            "a path under /client/{id}/v2 such as /requisicao/informacao-de-leitura",
        ),
        rasa_webhook_url=reader.url("RASA_WEBHOOK_URL"),
        whatsapp_provider=provider,
        answer_backend=backend,
        rasa_url=rasa_url,
        rasa_failed_delivery_intent=failed_intent,
        rasa_api_token=reader.text("RASA_API_TOKEN"),
        proactive_token=reader.text("PROACTIVE_TOKEN"),
        rasa_timeout=reader.parsed(
            "RASA_TIMEOUT", 30.0, _positive_number, "a number of seconds > 0"
        ),
        database_url=database_url,
        database_pool_size=reader.parsed(
            "DATABASE_POOL_SIZE", None, _whole(1), "a whole number of connections ≥ 1"
        ),
        store_flush=reader.parsed(
            "STORE_FLUSH", "webhooks", _choice("all", "webhooks", "none"), "all, webhooks or none"
        ),
        workers=reader.parsed("WORKERS", 4, _whole(0), "a whole number ≥ 0"),
        max_attempts=reader.parsed("MAX_ATTEMPTS", 8, _whole(1), "a whole number ≥ 1"),
        job_lease_seconds=reader.parsed(
            "JOB_LEASE_SECONDS", 30.0, _at_least(1.0), "a number of seconds ≥ 1"
        ),
        shutdown_grace_seconds=reader.parsed(
            "SHUTDOWN_GRACE_SECONDS", 20.0, _non_negative_number, "a number of seconds ≥ 0"
        ),
        send_rate=reader.parsed(
            "SEND_RATE", 80.0, _non_negative_number, "messages per second ≥ 0 (0 = no pacing)"
        ),
        send_burst=reader.parsed("SEND_BURST", 80, _whole(1), "a whole number ≥ 1"),
        br_ninth_digit=reader.parsed("BR_NINTH_DIGIT", False, _boolean, "true or false"),
        list_button_label=reader.text("LIST_BUTTON_LABEL", "Opções") or "Opções",
        interactive_fallback_body=reader.text("INTERACTIVE_FALLBACK_BODY", "Escolha uma opção:")
        or "Escolha uma opção:",
        more_options_body=reader.text("MORE_OPTIONS_BODY", "Mais opções:") or "Mais opções:",
        max_body_bytes=reader.parsed(
            "MAX_BODY_BYTES", 4 * 1024 * 1024, _whole(1024), "a whole number of bytes ≥ 1024"
        ),
        playground=reader.parsed("PLAYGROUND", sandbox, _boolean, "true or false"),
        admin_token=reader.text("ADMIN_TOKEN"),
        log_format=reader.parsed("LOG_FORMAT", "text", _log_format, "text or json"),
        log_level=reader.parsed(
            "LOG_LEVEL",
            "INFO",
            lambda t: _choice(*(n.lower() for n in LOG_LEVELS))(t).upper(),
            "one of " + ", ".join(LOG_LEVELS),
        ),
        mask_contacts=reader.parsed("MASK_CONTACTS", False, _boolean, "true or false"),
        sources=dict(reader.sources),
        warnings=tuple(warnings),
    )
    if len(settings.list_button_label) > 20:
        problems.append(
            f"LIST_BUTTON_LABEL: WhatsApp allows at most 20 characters, got "
            f"{len(settings.list_button_label)} ({settings.list_button_label!r})"
        )
    if problems:
        raise SettingsError(problems)
    return settings


# ---- wiring ----------------------------------------------------------------------------


def build_gateway(settings: Settings, *, backend: Backend | None = None) -> Gateway:
    """The one place that turns settings into a pipeline: store, backend and senders.

    `backend`: one the host provides (the Rasa channel: Rasa itself; the Django app wraps
    the configured one), else ANSWER_BACKEND's."""
    from whatsapp_api_integration.backends import load_backend
    from whatsapp_api_integration.core.outbound import RenderOptions
    from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
    from whatsapp_api_integration.store import Store
    from whatsapp_api_integration.store.engine import pool_size_for

    config = GatewayConfig(
        database_url=settings.database_url,
        store_flush=settings.store_flush,
        workers=settings.workers,
        max_attempts=settings.max_attempts,
        br_ninth_digit=settings.br_ninth_digit,
        render_options=RenderOptions(
            list_button_label=settings.list_button_label,
            interactive_fallback_body=settings.interactive_fallback_body,
            more_options_body=settings.more_options_body,
        ),
        lease_seconds=settings.job_lease_seconds,
        default_phone_number_id=settings.wpp_phone_number_identifier,
        mask_contacts=settings.mask_contacts,
        send_rate=settings.send_rate,
        send_burst=settings.send_burst,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        pool_size=settings.database_pool_size
        or pool_size_for(http_threads=8, worker_threads=settings.workers),
    )
    if backend is None:
        backend = load_backend(
            settings.answer_backend, rasa_url=settings.rasa_url, timeout=settings.rasa_timeout
        )
    # One store, shared with SERPRO's client so its token is shared between processes.
    store = Store(settings.database_url, pool_size=config.pool_size, flush=config.store_flush)
    gateway = Gateway(config, backend, build_senders(settings, store=store), store=store)
    if settings.rasa_failed_delivery_intent and settings.rasa_url:
        from whatsapp_api_integration.integrations.rasa_failures import (
            RasaFailedDeliveryNotifier,
        )
        from whatsapp_api_integration.pipeline.proactive import ProactiveSender

        gateway.on_failed_reply = RasaFailedDeliveryNotifier(
            settings.rasa_url,
            settings.rasa_failed_delivery_intent,
            proactive=ProactiveSender(gateway, default_provider=settings.whatsapp_provider),
            api_token=settings.rasa_api_token,
            br_ninth_digit=settings.br_ninth_digit,
            timeout=settings.rasa_timeout,
        )
    return gateway


def build_senders(settings: Settings, *, store: TokenStore | None = None) -> dict[str, Sender]:
    """A sender per configured provider; in sandbox one that records and sends nothing.

    `store` (the gateway's) lets SERPRO's client share its access token between processes."""
    senders: dict[str, Sender] = {}
    if settings.sandbox:
        from whatsapp_api_integration.providers.sandbox import SandboxSender

        senders["cloud_api"] = SandboxSender()
    if settings.wpp_authorization_token:
        from whatsapp_api_integration.providers.cloud_api import CloudApiClient

        senders["cloud_api"] = CloudApiClient(
            settings.wpp_authorization_token,
            base_url=settings.wpp_api_base_url,
            api_version=settings.wpp_api_version,
        )
    if settings.serpro_configured:
        senders["serpro"] = _serpro_sender(settings, store)
    return senders


def _serpro_sender(settings: Settings, store: TokenStore | None = None) -> Sender:
    import importlib
    import inspect

    try:
        module = importlib.import_module("whatsapp_api_integration.providers.serpro")
        client_class = module.SerproClient
    except (ImportError, AttributeError) as error:
        raise SettingsError(
            [f"SERPRO_CLIENT_ID: SERPRO is configured but its provider is unavailable ({error})"]
        ) from error
    options = {
        "base_url": settings.serpro_api_base_url,
        "phone_number_id": settings.serpro_phone_number_id,
        "waba_id": settings.serpro_waba_id,
        "token_store": store,
        "webhook_form": settings.serpro_webhook_form,
        "mark_read_path": settings.serpro_mark_read_path,
    }
    accepted = inspect.signature(client_class).parameters
    client: Sender = client_class(
        settings.serpro_client_id,
        settings.serpro_client_secret,
        **{name: value for name, value in options.items() if name in accepted},
    )
    return client
