"""Who may use the operator routes (the sandbox's JSON API, DESIGN §12), in any host.

Framework-free, so the Django app applies the same rule as the Flask host without Flask.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Protocol

# A request that names a client it was forwarded for is not taken as loopback.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class HeaderNames(Protocol):
    def __contains__(self, name: str, /) -> bool: ...


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_operator(
    remote_addr: str | None,
    headers: HeaderNames,
    authorization: str | None,
    admin_token: str | None,
) -> bool:
    """Loopback callers, or anyone with ADMIN_TOKEN: the rule of the sandbox's JSON API in
    every host. `headers`: the request's header names, matched regardless of case (Flask's
    and Django's headers are). A request a proxy forwarded is not loopback: a proxy on this
    machine connects from loopback for anyone."""
    if admin_token:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), admin_token.encode()):
            return True
    return is_loopback(remote_addr) and not any(name in headers for name in PROXY_HEADERS)
