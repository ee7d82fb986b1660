"""HTTP/1.1 request heads read from raw bytes, for the front door (RFC 9112).

The front door (`server/front_door.py`) answers WebSocket upgrades to `/app/{key}` (reference
§1) and signed publishes (§5.1, §5.2) without the web library. This module reads the head of
such a request; `protocol.handshake.read_handshake` reads an upgrade from it, `body_length`
the size of a publish's body. Every head this module does not fully understand is
`Verdict.FOREIGN`: the web library gets the same bytes and answers as it always did. Whatever
is accepted here, the web library would have read the same way, so the two never disagree
about where a request ends.

Rules:
1. A strict subset of HTTP/1.1: the request line `GET|POST SP origin-form SP HTTP/1.1`, header
   names that are tokens, values of visible ASCII, SP and HTAB, every line ending in CRLF, each
   name once, a Host (RFC 9112 §3.2), at most `MAX_HEAD_BYTES` and `MAX_HEADERS`.
2. Paths and queries only of characters that need no percent-decoding (unreserved, `/`, `=`,
   `&`): the path is its decoded self, and the query reads as the web library reads it (the
   first of repeated names wins; a name alone has the value "").
3. A body only with one decimal Content-Length within the limit, and no Transfer-Encoding,
   Content-Encoding, Expect, Upgrade or `Connection: close`.
4. No routing here: which endpoint a path names is `server.routes`' to say, once.

`RequestHead` is a named tuple rather than a frozen dataclass: one is built per request, and
a frozen dataclass costs four times as much to build.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final, NamedTuple

MAX_HEAD_BYTES: Final = 8192
MAX_HEADERS: Final = 128
MAX_LENGTH_DIGITS: Final = 9

# The request line, then the header lines (each ending in CRLF), of an ASCII head.
_HEAD: Final = re.compile(
    r"(GET|POST) (/[A-Za-z0-9\-._~/]*)(?:\?([A-Za-z0-9\-._~=&]*))? HTTP/1\.1\r\n"
    r"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t -~]*\r\n)*)"
)
_NOT_WITH_A_BODY: Final = frozenset(("transfer-encoding", "content-encoding", "expect", "upgrade"))


class Verdict(Enum):
    INCOMPLETE = "incomplete"  # the head has not fully arrived
    FOREIGN = "foreign"  # not ours: the web library answers it


class RequestHead(NamedTuple):
    """A request's head; `headers` maps lower-cased names to values."""

    method: str  # "GET" or "POST"
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    size: int  # bytes, up to and including the blank line


def read_head(buffer: bytes | bytearray, start: int = 0) -> RequestHead | Verdict:
    """The head of the request at `start` in `buffer`, once it is complete."""
    end = buffer.find(b"\r\n\r\n", start, start + MAX_HEAD_BYTES)
    if end < 0:
        return Verdict.FOREIGN if len(buffer) - start >= MAX_HEAD_BYTES else Verdict.INCOMPLETE
    # Latin-1 maps every byte to one character; the pattern admits only ASCII ones.
    request = _HEAD.fullmatch(str(buffer[start : end + 2], "latin-1"))
    if request is None:
        return Verdict.FOREIGN
    method, path, raw_query, fields = request.groups()
    headers = _headers(fields)
    if headers is None or "host" not in headers:  # aiohttp answers 400 without a Host
        return Verdict.FOREIGN
    query = _query(raw_query) if raw_query else {}
    return RequestHead(method, path, query, headers, end + 4 - start)


def body_length(head: RequestHead, max_body_bytes: int) -> int | None:
    """The length of a POST's body if the front door can read it (rule 3), else None."""
    headers = head.headers
    if head.method != "POST" or not _NOT_WITH_A_BODY.isdisjoint(headers):
        return None
    connection = headers.get("connection")
    if connection is not None and "close" in tokens(connection):
        return None
    length = headers.get("content-length", "")
    if not (length.isdigit() and len(length) <= MAX_LENGTH_DIGITS):
        return None
    body_bytes = int(length)
    return body_bytes if body_bytes <= max_body_bytes else None


def tokens(value: str) -> list[str]:
    """The lower-cased entries of a comma-separated header value."""
    return [token.strip(" \t").lower() for token in value.split(",")]


def _headers(fields: str) -> dict[str, str] | None:
    """Lower-cased names to values without surrounding whitespace; None if a name repeats."""
    lines = fields.split("\r\n")
    lines.pop()  # after the last CRLF
    if len(lines) > MAX_HEADERS:
        return None
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip(" \t")
    return headers if len(headers) == len(lines) else None


def _query(raw: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for pair in raw.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query.setdefault(name, value)
    return query
