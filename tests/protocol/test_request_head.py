"""Which request heads the front door reads itself, and what it reads from them.

Anything outside the strict subset is FOREIGN (for a body: None): the web library then answers
it from the same bytes, so these tables list what must never be taken for ours as much as what
must. A head over a size limit is TooLarge, ours or not. Upgrades read from a head are in
test_handshake.py; which paths the door answers is the routing table's
(tests/server/test_routes.py and test_front_door.py).
"""

from __future__ import annotations

import pytest

from ressonance.protocol.request_head import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    HeadLimits,
    RequestHead,
    TooLarge,
    Verdict,
    body_length,
    read_head,
    request_path,
)

LIMIT = 1000
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example
UPGRADE_HEADERS = (
    "Host: localhost:6001",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
)
PUBLISH_HEADERS = ("Host: localhost:6001", "Content-Type: application/json", "Content-Length: 2")


def head(line: str, *headers: str) -> bytes:
    return ("\r\n".join((line, *headers)) + "\r\n\r\n").encode()


def upgrade(target: str = "/app/key?protocol=7", *headers: str) -> bytes:
    return head(f"GET {target} HTTP/1.1", *(headers or UPGRADE_HEADERS))


def publish(target: str = "/apps/1/events?auth_key=k", *headers: str) -> bytes:
    return head(f"POST {target} HTTP/1.1", *(headers or PUBLISH_HEADERS))


def without(headers: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(h for h in headers if not h.lower().startswith(name.lower() + ":"))


def read(wire: bytes) -> RequestHead:
    request = read_head(wire)
    assert isinstance(request, RequestHead), request
    return request


def test_a_pusher_js_upgrade() -> None:
    wire = upgrade(
        "/app/app-key?protocol=7&client=js&version=8.4.0&flash=false",
        *UPGRADE_HEADERS,
        "Origin: https://app.example.com",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64)",
    )
    request = read(wire + b"\x81\x85tail")
    assert (request.method, request.path) == ("GET", "/app/app-key")
    assert request.query == {"protocol": "7", "client": "js", "version": "8.4.0", "flash": "false"}
    assert request.headers["origin"] == "https://app.example.com"
    assert request.headers["user-agent"] == "Mozilla/5.0 (X11; Linux x86_64)"
    assert request.size == len(wire)


@pytest.mark.parametrize(
    ("target", "query"),
    [
        ("/app/k", {}),
        ("/app/k?", {}),
        ("/app/k?protocol=7&protocol=6", {"protocol": "7"}),  # the first wins
        ("/app/k?flag&&x=", {"flag": "", "x": ""}),
        ("/app/k?a=b=c", {"a": "b=c"}),
        ("/app/k?=v", {"": "v"}),
    ],
)
def test_query_reads_as_the_web_library_reads_it(target: str, query: dict[str, str]) -> None:
    assert read(upgrade(target)).query == query


@pytest.mark.parametrize(
    "wire",
    [
        # A path or query that would need decoding.
        upgrade("/app/k%20x"),
        upgrade("/app/k?x=a+b"),
        upgrade("/app/k?x=%41"),
        upgrade("/app/k#fragment"),
        upgrade("http://localhost/app/k"),
        # Not the strict subset of HTTP/1.1.
        head("GET /app/k HTTP/1.0", *UPGRADE_HEADERS),
        head("HEAD /app/k HTTP/1.1", *UPGRADE_HEADERS),
        head("PUT /apps/42/events HTTP/1.1", *PUBLISH_HEADERS),
        head("get /app/k HTTP/1.1", *UPGRADE_HEADERS),
        head("GET  /app/k HTTP/1.1", *UPGRADE_HEADERS),
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS, "Bad Name: x"),
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS, "X-Control: a\x01b"),
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS, " folded: continuation"),
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS, "Upgrade: websocket"),  # twice
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS).replace(b"\r\nUpgrade", b"\nUpgrade"),
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS, "User-Agent: caf\u00e9"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Content-Length: 2"),
    ],
)
def test_foreign_heads(wire: bytes) -> None:
    assert read_head(wire) is Verdict.FOREIGN


def test_a_signed_publish() -> None:
    target = "/apps/42/events?auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=ab"
    wire = publish(target)
    request = read(wire + b"{}")
    assert request == RequestHead(
        method="POST",
        path="/apps/42/events",
        query={"auth_key": "k", "auth_timestamp": "1", "auth_version": "1.0", "body_md5": "ab"},
        headers={
            "host": "localhost:6001",
            "content-type": "application/json",
            "content-length": "2",
        },
        size=len(wire),
    )
    assert body_length(request, LIMIT) == 2


@pytest.mark.parametrize(
    ("target", "length"),
    [
        ("/apps/42/batch_events", "Content-Length: 0"),
        ("/apps/42/events", f"Content-Length: {LIMIT}"),
        ("/apps/42/events", "Content-Length: 007"),
    ],
)
def test_publish_variants(target: str, length: str) -> None:
    request = read(publish(target, "Host: x", "Connection: keep-alive", length))
    assert request.path == target
    assert body_length(request, LIMIT) == int(length.partition(": ")[2])


@pytest.mark.parametrize(
    "wire",
    [
        head("GET /apps/42/events HTTP/1.1", "Host: x", "Content-Length: 2"),
        publish("/apps/42/events", "Host: x"),  # no Content-Length
        publish("/apps/42/events", "Host: x", f"Content-Length: {LIMIT + 1}"),
        publish("/apps/42/events", "Host: x", "Content-Length: 1234567890"),
        publish("/apps/42/events", "Host: x", "Content-Length: -1"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2, 2"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Transfer-Encoding: chunked"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Content-Encoding: gzip"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Expect: 100-continue"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Upgrade: websocket"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Connection: close"),
        publish("/apps/42/events", "Host: x", "Content-Length: 2", "Connection: keep-alive, Close"),
    ],
)
def test_bodies_the_door_does_not_read(wire: bytes) -> None:
    assert body_length(read(wire), LIMIT) is None


def test_a_head_is_incomplete_until_its_blank_line() -> None:
    wire = publish()
    for end in range(len(wire)):
        assert read_head(wire[:end]) is Verdict.INCOMPLETE
    assert isinstance(read_head(bytearray(wire)), RequestHead)


def test_a_head_without_headers() -> None:
    assert read_head(b"GET /app/k HTTP/1.1\r\n\r\n") is Verdict.FOREIGN  # no Host


@pytest.mark.parametrize(
    "wire",
    [upgrade("/app/k", *UPGRADE_HEADERS[1:]), publish("/apps/1/events", *PUBLISH_HEADERS[1:])],
)
def test_a_request_without_host_is_foreign(wire: bytes) -> None:
    assert read_head(wire) is Verdict.FOREIGN  # aiohttp answers it 400


def test_a_request_further_in_the_buffer() -> None:
    first, second = publish() + b"{}", upgrade()
    request = read_head(first + second, len(first))
    assert isinstance(request, RequestHead)
    assert request.path == "/app/key"
    assert request.size == len(second)
    assert read_head(first + second[:-1], len(first)) is Verdict.INCOMPLETE


def test_a_head_up_to_the_limit_is_read_and_one_byte_more_is_too_large() -> None:
    short = publish("/apps/42/events", *PUBLISH_HEADERS)
    pad = "y" * (MAX_HEAD_BYTES - len(short) - len("X-Pad: \r\n"))
    lines = ("Host: x", "X-Pad: " + pad[: MAX_LINE_BYTES - 7], "X-Pad2: " + pad[MAX_LINE_BYTES:])
    exact = publish("/apps/42/events", *lines, "Content-Length: 2")
    size = len(exact)
    assert size <= MAX_HEAD_BYTES
    assert read(exact).size == size  # every line under the line limit
    over = publish(
        "/apps/42/events", *lines, "Content-Length: 2", "X: " + "z" * (1 + MAX_HEAD_BYTES - size)
    )
    assert read_head(over) == TooLarge("Request head is larger than 16 KB")


def test_an_unfinished_head_is_too_large_once_it_reaches_the_limit() -> None:
    lines = [f"X-{i}: " + "y" * 100 for i in range(MAX_HEAD_BYTES // 100)]
    long_head = publish("/apps/42/events", *PUBLISH_HEADERS, *lines)
    assert read_head(long_head[: MAX_HEAD_BYTES - 1]) is Verdict.INCOMPLETE
    assert read_head(long_head[:MAX_HEAD_BYTES]) == TooLarge("Request head is larger than 16 KB")


def test_a_line_over_the_limit_is_too_large_before_the_head_ends() -> None:
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: "
    line = start + b"c" * (MAX_LINE_BYTES - len(b"Cookie: "))
    assert read_head(line) is Verdict.INCOMPLETE  # exactly the limit
    assert read_head(line + b"c") == TooLarge("Request line or header line is longer than 8 KB")
    assert read_head(b"GET /" + b"a" * MAX_LINE_BYTES) == TooLarge(
        "Request line or header line is longer than 8 KB"
    )


def test_a_complete_head_with_a_line_over_the_limit_is_too_large() -> None:
    wire = upgrade("/app/k", *UPGRADE_HEADERS, "Cookie: " + "c" * MAX_LINE_BYTES)
    assert read_head(wire) == TooLarge("Request line or header line is longer than 8 KB")
    limits = HeadLimits(max_head_bytes=4096, max_line_bytes=100, max_headers=MAX_HEADERS)
    wire = upgrade(f"/app/{'k' * 100}")
    assert read_head(wire, 0, limits) == TooLarge(
        "Request line or header line is longer than 100 bytes"
    )


def test_more_headers_than_the_limit_is_too_large() -> None:
    wire = head("GET /app/k HTTP/1.1", *(f"X-{i}: y" for i in range(MAX_HEADERS)))
    assert read_head(wire) is Verdict.FOREIGN  # no Host, but not too many
    wire = head("GET /app/k HTTP/1.1", *(f"X-{i}: y" for i in range(MAX_HEADERS + 1)))
    assert read_head(wire) == TooLarge("Request has more than 128 header lines")
    shortest = b"\r\n" + b"a\r\n" * MAX_HEADERS + b"a\r\n\r\n"  # the fewest bytes for 129
    assert read_head(shortest) == TooLarge("Request has more than 128 header lines")


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "/healthz"),
        (b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n", "/metrics"),
        (b"POST /healthz HTTP/1.1\r\n\r\n", ""),
        (b"GET /readyz\r\n\r\n", ""),
    ],
)
def test_the_path_of_a_get_request(wire: bytes, path: str) -> None:
    assert request_path(wire) == path
    assert request_path(b"xx" + wire, 2) == path


def test_binary_garbage_is_foreign() -> None:
    assert read_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n") is Verdict.FOREIGN
