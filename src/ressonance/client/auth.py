"""Helpers for an app's auth endpoints: the JSON bodies pusher-js expects (reference §4)."""

from __future__ import annotations

import base64
import hashlib

import orjson

from ressonance.protocol.signing import channel_auth, user_auth


def authorize_channel(
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    *,
    presence: dict[str, object] | None = None,
    encryption_master_key: bytes | None = None,
) -> dict[str, str]:
    """The response body for a private, presence or encrypted channel authorization.

    Args:
        presence: `{"user_id": ..., "user_info": {...}}` for a presence channel.
        encryption_master_key: the 32-byte master key, for `private-encrypted-` channels.
    """
    body: dict[str, str] = {}
    channel_data = ""
    if presence is not None:
        channel_data = orjson.dumps(presence).decode()
        body["channel_data"] = channel_data
    body["auth"] = channel_auth(key, secret, socket_id, channel, channel_data)
    if encryption_master_key is not None:
        if len(encryption_master_key) != 32:
            raise ValueError("the encryption master key must be 32 bytes")
        digest = hashlib.sha256(channel.encode() + encryption_master_key).digest()
        body["shared_secret"] = base64.b64encode(digest).decode()
    return body


def authenticate_user(
    key: str, secret: str, socket_id: str, user: dict[str, object]
) -> dict[str, str]:
    """The response body for pusher:signin; `user` needs a string `id` (reference §2.5)."""
    if not isinstance(user.get("id"), str) or not user["id"]:
        raise ValueError("user['id'] must be a non-empty string")
    user_data = orjson.dumps(user).decode()
    return {"auth": user_auth(key, secret, socket_id, user_data), "user_data": user_data}
