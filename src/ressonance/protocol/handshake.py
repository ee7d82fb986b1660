"""Checks made when a WebSocket connects, before any Pusher message (reference §1).

Accepted protocol versions are 5 to 7; a missing version closes with 4008, a non-numeric one
with 4006 and any other number with 4007. The server's answer to the upgrade carries
`accept_key` of the client's key (RFC 6455 §4.2.2).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Final

from ressonance.protocol.errors import ErrorCode

MIN_PROTOCOL: Final = 5
MAX_PROTOCOL: Final = 7
_WEBSOCKET_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value answering Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1(key.encode() + _WEBSOCKET_GUID).digest()).decode()


def protocol_problem(query: Mapping[str, str]) -> tuple[ErrorCode, str] | None:
    """The close code and reason for a bad `protocol` query parameter, or None."""
    version = query.get("protocol")
    if version is None or version == "":
        return ErrorCode.NO_PROTOCOL_VERSION, "No protocol version supplied"
    # str.isdigit() alone admits "²" (which int() rejects) and other non-ASCII digits.
    if not (version.isascii() and version.isdigit()):
        return ErrorCode.INVALID_VERSION_FORMAT, f"Invalid version string format: {version[:20]}"
    # int() refuses more than 4300 digits; a version that long is unsupported anyway.
    if len(version) > 9 or not MIN_PROTOCOL <= int(version) <= MAX_PROTOCOL:
        return (
            ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
            f"Unsupported protocol version {version[:20]}; "
            f"{MIN_PROTOCOL} to {MAX_PROTOCOL} are supported",
        )
    return None


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether an `Origin` header matches one of the app's patterns.

    Patterns match the whole origin (`https://app.example.com`) or just its host
    (`app.example.com`); `*` matches any run of characters (`*.example.com`). A request
    without an Origin (a server-side client) is allowed.
    """
    if origin is None or "*" in allowed:
        return True
    host = origin.split("://", 1)[-1]
    return any(_pattern(p).fullmatch(origin) or _pattern(p).fullmatch(host) for p in allowed)


def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.IGNORECASE)
