"""Who may use the playground and the operator views (DESIGN §3 and §12).

The rules, in order:
- PLAYGROUND off (the default outside sandbox): the routes do not exist (404).
- A valid ADMIN_TOKEN, given as `Authorization: Bearer <token>` or through the login form's
  cookie, opens them. Tokens are compared in constant time.
- Without a token, only a sandbox gateway reached directly on loopback answers. A request
  that came through a proxy (it carries `Forwarded`, `X-Forwarded-For` or `X-Real-IP`) is not
  taken as loopback, since a proxy on the same machine connects from 127.0.0.1.
- Anything else is refused; when ADMIN_TOKEN is unset nothing can open them off loopback.

The cookie never holds the token itself but an HMAC of a fixed label keyed with it, so a
stolen cookie does not reveal the token and changing ADMIN_TOKEN ends every session.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from flask import Request

from whatsapp_api_integration.web.operators import PROXY_HEADERS

if TYPE_CHECKING:
    from whatsapp_api_integration.settings import Settings

COOKIE_NAME = "whatsapp_console"
SESSION_LABEL = b"whatsapp-api-integration console session v1"


def session_value(admin_token: str) -> str:
    return hmac.new(admin_token.encode(), SESSION_LABEL, hashlib.sha256).hexdigest()


def token_matches(given: str | None, admin_token: str | None) -> bool:
    if not given or not admin_token:
        return False
    return hmac.compare_digest(given.encode(), admin_token.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def is_direct_loopback(request: Request) -> bool:
    """The client is this machine, and no proxy says it forwards someone else's request."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        address = request.remote_addr
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def has_token(request: Request, settings: Settings) -> bool:
    """The request carries ADMIN_TOKEN (header) or the session cookie made from it."""
    admin_token = settings.admin_token
    if not admin_token:
        return False
    if token_matches(bearer(request), admin_token):
        return True
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return False
    return hmac.compare_digest(cookie.encode(), session_value(admin_token).encode())


def allowed(request: Request, settings: Settings) -> bool:
    if has_token(request, settings):
        return True
    return settings.sandbox and is_direct_loopback(request)


def refusal_reason(request: Request, settings: Settings) -> str:
    """Why a request was refused, in words an operator can act on (never a secret)."""
    if not settings.admin_token:
        if not settings.sandbox:
            return (
                "The playground and the operator views need ADMIN_TOKEN outside sandbox mode; "
                "it is not set, so they refuse every request."
            )
        return (
            "Without ADMIN_TOKEN the playground answers only on loopback "
            "(http://127.0.0.1); set ADMIN_TOKEN to open it from elsewhere."
        )
    return "Sign in with the ADMIN_TOKEN setting's value."


# Query parameters never carried into a login redirect's `next`: whoever put a token in the
# URL would find it again in the Location header, the login page, its own browser history and
# any proxy's access log.
_CREDENTIAL_WORDS = ("token", "secret", "key", "password")


def next_without_credentials(path: str, args: Any) -> str:
    """`path` and its query (a werkzeug MultiDict) without credential-like parameters."""
    kept = [
        (name, value)
        for name, value in args.items(multi=True)
        if not any(word in name.lower() for word in _CREDENTIAL_WORDS)
    ]
    return path + ("?" + urlencode(kept) if kept else "")


def safe_next(target: str | None, default: str) -> str:
    """A redirect target inside this site only (no scheme, no host, no `//`)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


class FailureThrottle:
    """Stops guessing: after `limit` wrong tokens (login form or header) within `window`
    seconds, no token is checked until the oldest failure leaves the window. Sessions already
    open (their cookie) keep working: only new guesses wait."""

    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self._failures and now - self._failures[0] >= self.window:
            self._failures.popleft()

    def locked(self) -> bool:
        with self._lock:
            self._forget_old(self.clock())
            return len(self._failures) >= self.limit

    def failed(self) -> None:
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            self._failures.append(now)
