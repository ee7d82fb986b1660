"""Pusher error codes and the one exception hierarchy of Ressonance.

Codes follow the Pusher protocol page, "Error codes" (reference §1 and §7):
4000-4099 mean "do not reconnect", 4100-4199 "reconnect after a back-off",
4200-4299 "reconnect now", 4300-4399 "other errors" (never used as close codes,
since pusher-js would then never reconnect).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class ErrorCode(IntEnum):
    """Pusher WebSocket error and close codes, named by meaning."""

    SSL_ONLY = 4000
    APP_NOT_FOUND = 4001
    APP_DISABLED = 4003
    OVER_CONNECTION_QUOTA = 4004
    PATH_NOT_FOUND = 4005
    INVALID_VERSION_FORMAT = 4006
    UNSUPPORTED_PROTOCOL_VERSION = 4007
    NO_PROTOCOL_VERSION = 4008
    UNAUTHORIZED = 4009
    OVER_CAPACITY = 4100
    GENERIC_RECONNECT = 4200
    PONG_NOT_RECEIVED = 4201
    CLOSED_AFTER_INACTIVITY = 4202
    CLIENT_EVENT_REJECTED = 4301
    # The same code for the other limits a client runs into (channels per connection,
    # subscriptions and messages per second), as Soketi's `LimitReached` does (§2.2).
    LIMIT_REACHED = 4301
    WATCHLIST_LIMIT = 4302


# Sent as the `code` of a pusher:error that is informational (the connection stays open).
NO_CODE: Final = None


class RessonanceError(Exception):
    """Root of every error Ressonance raises on purpose."""


class ConfigError(RessonanceError):
    """A setting is missing or invalid; the message names the key and the problem."""


class ProtocolError(RessonanceError):
    """A client sent something the Pusher protocol does not allow.

    Args:
        message: what was wrong, for the client to read.
        code: the Pusher code for the `pusher:error` event, or None when the
            error is informational (the connection stays open either way).
        channel: the channel the error is about, when there is one.
    """

    def __init__(self, message: str, code: int | None = None, channel: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.channel = channel


class SubscriptionError(RessonanceError):
    """A subscription is refused; answered with a channel-scoped pusher:subscription_error.

    `kind` is the `type` field pusher-js and Echo surface ("AuthError", "LimitReached", ...)
    and `status` its numeric status (reference §2.2).
    """

    def __init__(self, channel: str, kind: str, message: str, status: int) -> None:
        super().__init__(message)
        self.channel = channel
        self.kind = kind
        self.message = message
        self.status = status


class ApiError(RessonanceError):
    """An HTTP API request is refused with `status` and a JSON body `{"error", "code"}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
