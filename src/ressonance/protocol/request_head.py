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
   name once, a Host (RFC 9112 §3.2).
2. Paths and queries only of characters that need no percent-decoding (unreserved, `/`, `=`,
   `&`): the path is its decoded self, and the query reads as the web library reads it (the
   first of repeated names wins; a name alone has the value "").
3. A body only with one decimal Content-Length within the limit, and no Transfer-Encoding,
   Content-Encoding, Expect, Upgrade or `Connection: close`.
4. No routing here: which endpoint a path names is `server.routes`' to say, once.
5. Size limits (`HeadLimits`: the whole head, any one line, the number of headers) are checked
   on every head, ours or foreign, while it arrives: a head that cannot end within them is
   `TooLarge` as soon as that is certain, so no more of it needs to be kept. No length a
   client declares is trusted before it is counted.

`RequestHead` is a named tuple rather than a frozen dataclass: one is built per request, and
a frozen dataclass costs four times as much to build.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final, NamedTuple

MAX_HEAD_BYTES: Final = 16384
MAX_LINE_BYTES: Final = 8192
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


class HeadLimits(NamedTuple):
    """Bounds on a request head: its bytes (final CRLF CRLF included), the bytes of any one
    line (CRLF excluded) and the number of header lines."""

    max_head_bytes: int = MAX_HEAD_BYTES
    max_line_bytes: int = MAX_LINE_BYTES
    max_headers: int = MAX_HEADERS


DEFAULT_HEAD_LIMITS: Final = HeadLimits()


class TooLarge(NamedTuple):
    """A head over one of the `HeadLimits`: answered 431, never handed on."""

    reason: str


class RequestHead(NamedTuple):
    """A request's head; `headers` maps lower-cased names to values."""

    method: str  # "GET" or "POST"
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    size: int  # bytes, up to and including the blank line


def read_head(
    buffer: bytes | bytearray, start: int = 0, limits: HeadLimits = DEFAULT_HEAD_LIMITS
) -> RequestHead | TooLarge | Verdict:
    """The head of the request at `start` in `buffer`, once it is complete (its sizes
    checked first, rule 5)."""
    end = buffer.find(b"\r\n\r\n", start, start + limits.max_head_bytes)
    if end < 0:
        return _unfinished(buffer, start, limits)
    # (A head this short has neither too many lines nor one too long: see `_oversized`.)
    if end - start > min(3 * limits.max_headers + 1, limits.max_line_bytes):
        too_large = _oversized(buffer, start, end, limits)
        if too_large is not None:
            return too_large
    # Latin-1 maps every byte to one character; the pattern admits only ASCII ones.
    request = _HEAD.fullmatch(str(buffer[start : end + 2], "latin-1"))
    if request is None:
        return Verdict.FOREIGN
    method, path, raw_query, fields = request.groups()
    headers = _headers(fields)
    if "host" not in headers:  # a repeated name, or no Host: aiohttp answers 400
        return Verdict.FOREIGN
    query = _query(raw_query) if raw_query else {}
    return RequestHead(method, path, query, headers, end + 4 - start)


def _unfinished(buffer: bytes | bytearray, start: int, limits: HeadLimits) -> TooLarge | Verdict:
    """INCOMPLETE, unless what arrived of the head is already over a limit."""
    if len(buffer) - start >= limits.max_head_bytes:
        return TooLarge(f"Request head is larger than {_size(limits.max_head_bytes)}")
    line_start = max(buffer.rfind(b"\n", start) + 1, start)
    if len(buffer) - line_start > limits.max_line_bytes:
        return TooLarge(_LINE_TOO_LONG.format(_size(limits.max_line_bytes)))
    return Verdict.INCOMPLETE


def _oversized(
    buffer: bytes | bytearray, start: int, end: int, limits: HeadLimits
) -> TooLarge | None:
    """Whether the complete head from `start` to `end` (its last CRLF CRLF) has too many
    header lines or one too long (as the web library counts them: one per CRLF)."""
    # Each line before `end` but a first empty one is at least one byte and its CRLF: a head
    # this short cannot have too many, and is not counted.
    short = end - start <= 3 * limits.max_headers + 1
    if not short and buffer.count(b"\r\n", start, end) > limits.max_headers:
        return TooLarge(f"Request has more than {limits.max_headers} header lines")
    if end - start <= limits.max_line_bytes:
        return None  # no line can be longer than the head
    line_start = start
    while line_start <= end:
        line_end = buffer.find(b"\r\n", line_start, end + 2)
        if line_end - line_start > limits.max_line_bytes:
            return TooLarge(_LINE_TOO_LONG.format(_size(limits.max_line_bytes)))
        line_start = line_end + 2
    return None


_LINE_TOO_LONG: Final = "Request line or header line is longer than {}"


def _size(limit: int) -> str:
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"


def request_path(buffer: bytes | bytearray, start: int = 0) -> str:
    """The path of a GET request line at `start`, "" for any other request (no query)."""
    line_end = buffer.find(b"\r\n", start)
    words = bytes(buffer[start:line_end]).split(b" ")
    if len(words) != 3 or words[0] != b"GET":
        return ""
    return words[1].partition(b"?")[0].decode("latin-1")


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


def _headers(fields: str) -> dict[str, str]:
    """Lower-cased names to values without surrounding whitespace; empty if a name repeats
    (a head has a Host, so an empty result is refused like a repeated name)."""
    lines = fields.split("\r\n")
    lines.pop()  # after the last CRLF
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip(" \t")
    return headers if len(headers) == len(lines) else {}


def _query(raw: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for pair in raw.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query.setdefault(name, value)
    return query
