"""HMAC-SHA256 signatures of the Pusher protocol (reference §4 and §5.6).

Every signature is the lowercase hex HMAC-SHA256 of a string, keyed with the app secret.
Strings supplied by clients (`channel_data`, `user_data`) are signed exactly as received,
never re-serialized. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from ressonance.protocol.errors import ApiError

TIMESTAMP_WINDOW_SECONDS: Final = 600
_EMPTY_MD5: Final = hashlib.md5(b"").hexdigest()


def sign(secret: str, message: str) -> str:
    """Lowercase hex HMAC-SHA256 of `message` keyed with `secret`."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def channel_auth(
    key: str, secret: str, socket_id: str, channel: str, channel_data: str = ""
) -> str:
    """The `auth` token an app back-end returns for a private or presence channel."""
    subject = f"{socket_id}:{channel}:{channel_data}" if channel_data else f"{socket_id}:{channel}"
    return f"{key}:{sign(secret, subject)}"


def user_auth(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """The `auth` token an app back-end returns for pusher:signin."""
    return f"{key}:{sign(secret, f'{socket_id}::user::{user_data}')}"


def token_matches(token: object, key: str, secret: str, subject: str) -> bool:
    """Whether `token` is `key:HMAC(subject)` for this app."""
    if not isinstance(token, str):
        return False
    given_key, _, digest = token.partition(":")
    if not hmac.compare_digest(given_key.encode(), key.encode()):
        return False
    return hmac.compare_digest(digest.encode(), sign(secret, subject).encode())


def request_string(method: str, path: str, params: Mapping[str, str]) -> str:
    """The string an HTTP API request signs: method, path and sorted unescaped query."""
    pairs = sorted([(k.lower(), v) for k, v in params.items()])
    query = "&".join([f"{k}={v}" for k, v in pairs if k != "auth_signature"])
    return f"{method.upper()}\n{path}\n{query}"


def sign_request(secret: str, method: str, path: str, params: Mapping[str, str]) -> str:
    """The `auth_signature` for an HTTP API request."""
    return sign(secret, request_string(method, path, params))


def verify_request(
    *,
    key: str,
    secret: str,
    method: str,
    path: str,
    params: Mapping[str, str],
    body: bytes,
    now: float,
) -> None:
    """Check an HTTP API request's signature, timestamp and body digest (reference §5.6).

    `params` is the URL-decoded query. The three SDK styles pass: Python's body_md5 on GET
    (md5 of the empty body), PHP's percent-encoded values (decoded before they get here), and
    Node's body_md5 only when there is a body.

    Raises:
        ApiError: 401 naming what is wrong.
    """
    for required in ("auth_key", "auth_timestamp", "auth_signature"):
        if required not in params:
            raise ApiError(401, f"Missing query parameter {required}")
    if not hmac.compare_digest(params["auth_key"].encode(), key.encode()):
        raise ApiError(401, "Unknown auth_key")
    try:
        timestamp = int(params["auth_timestamp"])
    except ValueError:
        raise ApiError(401, "auth_timestamp must be an integer") from None
    # Compared, not subtracted: a timestamp of 400 digits is a valid int but no float.
    if not now - TIMESTAMP_WINDOW_SECONDS <= timestamp <= now + TIMESTAMP_WINDOW_SECONDS:
        raise ApiError(
            401,
            f"Timestamp expired: given timestamp ({timestamp}) not within "
            f"{TIMESTAMP_WINDOW_SECONDS}s of server time ({int(now)})",
        )
    body_md5 = params.get("body_md5")
    if body or body_md5 is not None:
        actual = hashlib.md5(body).hexdigest() if body else _EMPTY_MD5
        if body_md5 is None:
            raise ApiError(401, "Missing query parameter body_md5 for a request with a body")
        if not hmac.compare_digest(body_md5.encode(), actual.encode()):
            raise ApiError(401, "body_md5 does not match the request body")
    expected = sign_request(secret, method, path, params)
    if not hmac.compare_digest(params["auth_signature"].encode(), expected.encode()):
        raise ApiError(
            401,
            "Invalid signature: you should have sent HmacSHA256Hex("
            + repr(request_string(method, path, params))
            + ", your_secret_key)",
        )


def webhook_signature(secret: str, body: bytes) -> str:
    """`X-Pusher-Signature` of a webhook body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
