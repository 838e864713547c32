"""Who may post to the webhook (DESIGN §4): Meta's signature, its GET handshake, SERPRO's bearer.

Every comparison of a secret is constant time (`hmac.compare_digest` on bytes), so response
timing says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["SIGNATURE_PREFIX", "handshake_challenge", "sign", "verify_bearer", "verify_signature"]

SIGNATURE_PREFIX = "sha256="
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DIGEST_HEX_LENGTH = 2 * hashlib.sha256().digest_size


def sign(body: bytes, app_secret: str) -> str:
    """``X-Hub-Signature-256`` for ``body``: ``sha256=`` + HMAC-SHA256 hex of the raw bytes.

    Raises ValueError for an empty secret: a signature keyed with nothing proves nothing.
    """
    if not app_secret:
        raise ValueError("an empty app secret cannot sign")
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """True when ``header`` is the signature of these exact bytes under ``app_secret``.

    False for a missing or empty header, another algorithm (``sha1=…``), a digest of the
    wrong length or with non-hex characters, and always for an empty ``app_secret`` (an empty
    secret never verifies anything; hosts treat ``WPP_APP_SECRET=""`` as a configuration
    error). Meta sends lowercase hex; upper-case hex denotes the same digest and is accepted.
    """
    if not app_secret or not header:
        return False
    header = header.strip()
    if not header.startswith(SIGNATURE_PREFIX):
        return False
    received = header[len(SIGNATURE_PREFIX) :]
    if len(received) != _DIGEST_HEX_LENGTH or not _HEX_DIGITS.issuperset(received):
        return False
    expected = sign(body, app_secret)[len(SIGNATURE_PREFIX) :]
    return hmac.compare_digest(expected.encode("ascii"), received.lower().encode("ascii"))


def handshake_challenge(params: Mapping[str, str], verify_token: str | None) -> str | None:
    """The GET handshake: the ``hub.challenge`` to echo back, or None to answer 403.

    None unless ``hub.mode`` is ``subscribe``, a verify token is configured (unset or empty
    never matches, not even an empty ``hub.verify_token``), the token sent equals it, and a
    non-empty challenge was sent.
    """
    if not verify_token:
        return None
    if params.get("hub.mode") != "subscribe":
        return None
    sent = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if not isinstance(sent, str) or not challenge or not isinstance(challenge, str):
        return None
    if not hmac.compare_digest(sent.encode("utf-8"), verify_token.encode("utf-8")):
        return None
    return challenge


def verify_bearer(header: str | None, token: str) -> bool:
    """True when an ``Authorization`` header is ``Bearer <token>``.

    The scheme is case-insensitive (RFC 7235); the token is compared in constant time. An
    empty ``token`` never verifies anything.
    """
    if not token or not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8"), token.encode("utf-8"))
