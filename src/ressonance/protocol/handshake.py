"""A WebSocket's opening handshake: what it asks for, and why it may be refused (reference §1).

`Handshake` is the one shape of an upgrade to `/app/{key}`, whoever read it: the front door
reads it from a `RequestHead` (`read_handshake`), the transport from the web library's
request. The opening policy (`server.gate`) takes it from there; every reason it gives for
not opening is a `Refusal`: a Pusher close code and the reason the client reads.

Rules:
1. `read_handshake` accepts only what the web library would accept as it is: GET, no body,
   `Upgrade: websocket`, a Connection naming upgrade, version 13, 8 or 7, a key of 16 bytes,
   and no subprotocol offer (which the web library logs). Anything else is None and is left
   to the web library.
2. Accepted Pusher protocol versions are 5 to 7; a missing version closes with 4008, a
   non-numeric one with 4006 and any other number with 4007 (`protocol_problem`).
3. The server's answer to the upgrade carries `accept_key` of the client's key (RFC 6455
   §4.2.2).
4. Every refusal of a new WebSocket, wherever it is decided (here, admission, the node's
   registry), is a `Refusal`; no other shape. It is a (code, reason) pair, as a socket's
   close takes them.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.request_head import RequestHead, tokens

MIN_PROTOCOL: Final = 5
MAX_PROTOCOL: Final = 7
WEBSOCKET_VERSIONS: Final = ("13", "8", "7")
_WEBSOCKET_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_WEBSOCKET_KEY: Final = re.compile(r"[A-Za-z0-9+/]{22}==")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 % of a connect
class Handshake:
    """An upgrade to `/app/{key}`, as the opening policy needs it (read, never changed)."""

    key: str  # the app key from the path
    query: Mapping[str, str]
    origin: str | None
    forwarded_for: tuple[str, ...]  # X-Forwarded-For headers, for trusted proxies


class Refusal(NamedTuple):
    """Why a WebSocket is not opened: pusher:error with `code`, then a close with it."""

    code: ErrorCode
    reason: str


def read_handshake(head: RequestHead, key: str) -> Handshake | None:
    """The handshake of `head`, an upgrade to the app `key`, if it is one as it is (rule 1)."""
    headers = head.headers
    if head.method != "GET" or "content-length" in headers or "transfer-encoding" in headers:
        return None
    if "sec-websocket-protocol" in headers or headers.get("upgrade", "").lower() != "websocket":
        return None
    connection = headers.get("connection", "")
    if connection.lower() != "upgrade" and "upgrade" not in tokens(connection):
        return None
    if headers.get("sec-websocket-version") not in WEBSOCKET_VERSIONS:
        return None
    if _WEBSOCKET_KEY.fullmatch(headers.get("sec-websocket-key", "")) is None:
        return None
    forwarded = headers.get("x-forwarded-for")
    return Handshake(
        key, head.query, headers.get("origin"), () if forwarded is None else (forwarded,)
    )


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value answering Sec-WebSocket-Key `key`."""
    digest = hashlib.sha1(key.encode() + _WEBSOCKET_GUID).digest()
    return binascii.b2a_base64(digest, newline=False).decode()  # base64.b64encode, a call less


def protocol_problem(query: Mapping[str, str]) -> Refusal | None:
    """The refusal for a bad `protocol` query parameter, or None (rule 2)."""
    version = query.get("protocol")
    if version is None or version == "":
        return Refusal(ErrorCode.NO_PROTOCOL_VERSION, "No protocol version supplied")
    # str.isdigit() alone admits "²" (which int() rejects) and other non-ASCII digits.
    if not (version.isascii() and version.isdigit()):
        return Refusal(
            ErrorCode.INVALID_VERSION_FORMAT, f"Invalid version string format: {version[:20]}"
        )
    # int() refuses more than 4300 digits; a version that long is unsupported anyway.
    if len(version) > 9 or not MIN_PROTOCOL <= int(version) <= MAX_PROTOCOL:
        return Refusal(
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
