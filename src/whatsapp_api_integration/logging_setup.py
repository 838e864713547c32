"""Logging for the gateway's processes: text or one JSON object per line, and never a secret.

Redaction is a safety net applied to every formatted line (message, arguments and traceback
alike): known secret values are masked, as are query parameters and headers that carry
tokens (Meta sends `hub.verify_token` in the handshake's query string, which an access log
would otherwise print). With `mask_contacts`, phone numbers and business-scoped user ids are
masked too (`55619****4321`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

_TOKEN_PARAMETER = re.compile(
    r"((?:hub(?:\.|%2E)verify_token|verify_token|access_token|client_secret|token|jwtToken)"
    r"(?:=|%3D|\"\s*:\s*\"|'\s*:\s*'))[^&\s\"']*",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9\-._~+/=]+", re.IGNORECASE)
# A phone number: 11 to 15 digits standing alone (not part of a longer number or a word).
_PHONE = re.compile(r"(?<![\w.])(\d{5})(\d{2,6})(\d{4})(?![\w])")
# A business-scoped user id: a country code, a dot and digits (BR.13491208655302741918).
_BSUID = re.compile(r"\b([A-Z]{2}\.\d{4})(\d+)(\d{4})\b")

# Marks the handlers this module installs, so configuring again replaces them.
_OWN_HANDLER = "_whatsapp_gateway_handler"
# Loggers of the servers we run under, which log request lines with their query strings.
ACCESS_LOGGERS = ("werkzeug", "granian.access", "whatsapp_api_integration.access")


def mask_contact(text: str) -> str:
    """Mask every phone number and business-scoped user id in the text."""
    text = _PHONE.sub(lambda m: m[1] + "*" * len(m[2]) + m[3], text)
    return _BSUID.sub(lambda m: m[1] + "*" * len(m[2]) + m[3], text)


class Redactor:
    """Removes secrets (and optionally contacts) from a line of log text."""

    def __init__(self, secrets: Iterable[str] = (), *, mask_contacts: bool = False) -> None:
        # Longest first, so a secret that contains another is masked whole.
        values = {s for s in secrets if s and len(s) >= 4}
        values |= {json.dumps(s)[1:-1] for s in values}  # as it appears inside JSON
        self.secrets = sorted(values, key=len, reverse=True)
        self.mask_contacts = mask_contacts

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "****")
        text = _TOKEN_PARAMETER.sub(r"\1****", text)
        text = _BEARER.sub(r"\1****", text)
        if self.mask_contacts:
            text = mask_contact(text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message redacted; for loggers whose records skip our formatter."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


# Attributes every LogRecord has; anything else was passed in `extra=` and is worth keeping.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return self.redactor(line)


def configure(
    level: str = "INFO",
    fmt: str = "text",
    mask_contacts: bool = False,
    *,
    secrets: Iterable[str] = (),
    stream: Any = None,
) -> Redactor:
    """Configure the root logger (idempotent: replaces the handler it installed before)."""
    redactor = Redactor(secrets, mask_contacts=mask_contacts)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _OWN_HANDLER, True)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    handler.addFilter(RedactingFilter(redactor))

    root = logging.getLogger()
    for installed in [h for h in root.handlers if getattr(h, _OWN_HANDLER, False)]:
        root.removeHandler(installed)
    root.addHandler(handler)
    root.setLevel(level.upper())

    # Alembic narrates every migration check (each /readyz): only its warnings are news.
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))

    # Records logged on these loggers may reach handlers other than ours (a server's own
    # access-log handler), so they are redacted at the source as well.
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(old)
        logger.addFilter(RedactingFilter(redactor))
    return redactor


def server_log_config() -> dict[str, Any]:
    """A logging dictConfig for granian that sends its own lines through the root logger,
    so they get our format (text or JSON) and redaction."""
    return {
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
        }
    }
