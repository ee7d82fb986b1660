"""Which request heads the front door reads itself, and what it reads from them.

Anything outside the strict subset is FOREIGN (for a body: None): the web library then answers
it from the same bytes, so these tables list what must never be taken for ours as much as what
must. Upgrades read from a head are in test_handshake.py; which paths the door answers is the
routing table's (tests/server/test_routes.py and test_front_door.py).
"""

from __future__ import annotations

import pytest

from ressonance.protocol.request_head import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    RequestHead,
    Verdict,
    body_length,
    read_head,
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
        head("GET /app/k HTTP/1.1", *UPGRADE_HEADERS, *(f"X-{i}: y" for i in range(MAX_HEADERS))),
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


def test_a_head_longer_than_the_limit_is_foreign() -> None:
    long_head = publish("/apps/42/events", *PUBLISH_HEADERS, "X-Pad: " + "y" * MAX_HEAD_BYTES)
    assert read_head(long_head[: MAX_HEAD_BYTES - 1]) is Verdict.INCOMPLETE
    assert read_head(long_head[:MAX_HEAD_BYTES]) is Verdict.FOREIGN
    assert read_head(long_head) is Verdict.FOREIGN


def test_binary_garbage_is_foreign() -> None:
    assert read_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n") is Verdict.FOREIGN
