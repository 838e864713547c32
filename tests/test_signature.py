"""core.signature: X-Hub-Signature-256, the GET handshake and SERPRO's bearer (DESIGN §4, §11)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from whatsapp_api_integration.core.signature import (
    handshake_challenge,
    sign,
    verify_bearer,
    verify_signature,
)

pytestmark = pytest.mark.core

SECRET = "app-secret-123"
# Meta signs the bytes it sends, which escape non-ASCII (and "/"): never re-serialised JSON.
BODY = b'{"object":"whatsapp_business_account","entry":[{"id":"1","text":"Ol\\u00e1 \\/ @"}]}'


def reference_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_sign_matches_an_independent_hmac() -> None:
    assert sign(BODY, SECRET) == reference_signature(BODY, SECRET)
    # A known vector (RFC 4231 test case 2), so both sides are not wrong the same way.
    assert sign(b"what do ya want for nothing?", "Jefe") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_sign_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign(BODY, "")


def test_good_signature_verifies() -> None:
    assert verify_signature(BODY, reference_signature(BODY, SECRET), SECRET)
    assert verify_signature(BODY, " " + sign(BODY, SECRET) + " ", SECRET)


def test_upper_case_hex_denotes_the_same_digest() -> None:
    header = sign(BODY, SECRET)
    assert verify_signature(BODY, "sha256=" + header[7:].upper(), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(),
        "SHA256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),
        hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),  # no prefix
        reference_signature(BODY, SECRET)[:-1],  # too short
        reference_signature(BODY, SECRET) + "0",  # too long
        reference_signature(BODY, SECRET)[:-1] + "g",  # not hex
        reference_signature(BODY, SECRET)[:-1] + "é",  # not ASCII
        reference_signature(BODY, "another secret"),
        reference_signature(BODY + b" ", SECRET),  # another body
        reference_signature(b'{"object": "whatsapp_business_account"}', SECRET),
    ],
)
def test_bad_signatures_do_not_verify(header: str | None) -> None:
    assert verify_signature(BODY, header, SECRET) is False


def test_signature_of_reserialised_json_does_not_verify() -> None:
    unescaped = json.dumps(json.loads(BODY), ensure_ascii=False).encode("utf-8")
    assert unescaped != BODY
    assert not verify_signature(BODY, sign(unescaped, SECRET), SECRET)


def test_an_empty_secret_never_verifies() -> None:
    empty_key_signature = "sha256=" + hmac.new(b"", BODY, hashlib.sha256).hexdigest()
    assert verify_signature(BODY, empty_key_signature, "") is False


# ---- handshake ---------------------------------------------------------------------------


def params(
    mode: str = "subscribe", token: str = "tok", challenge: str = "1158201444"
) -> dict[str, str]:
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}


def test_handshake_returns_the_challenge() -> None:
    assert handshake_challenge(params(), "tok") == "1158201444"


@pytest.mark.parametrize(
    ("query", "token"),
    [
        (params(token="wrong"), "tok"),
        (params(token="tok "), "tok"),
        (params(token="TOK"), "tok"),
        (params(mode="unsubscribe"), "tok"),
        (params(challenge=""), "tok"),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok"}, "tok"),  # no challenge
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "tok"),  # no token
        ({"hub.verify_token": "tok", "hub.challenge": "1"}, "tok"),  # no mode
        ({}, "tok"),
        (params(token=""), ""),  # an unset token matches nothing, not even ""
        (params(token=""), None),
        (params(), None),
    ],
)
def test_handshake_refusals(query: dict[str, str], token: str | None) -> None:
    assert handshake_challenge(query, token) is None


def test_handshake_with_non_ascii_token() -> None:
    assert handshake_challenge(params(token="senha-ção"), "senha-ção") == "1158201444"
    assert handshake_challenge(params(token="senha-cao"), "senha-ção") is None


# ---- bearer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["Bearer s3cr3t", "bearer s3cr3t", "BEARER  s3cr3t ", " Bearer s3cr3t"]
)
def test_bearer_accepted(header: str) -> None:
    assert verify_bearer(header, "s3cr3t")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "s3cr3t",
        "Basic s3cr3t",
        "Bearer s3cr3",
        "Bearer s3cr3tt",
        "Bearer ção",
    ],
)
def test_bearer_refused(header: str | None) -> None:
    assert verify_bearer(header, "s3cr3t") is False


def test_bearer_with_an_empty_token_never_verifies() -> None:
    assert verify_bearer("Bearer ", "") is False
    assert verify_bearer("Bearer x", "") is False
