"""The opening handshake: which upgrades are read as they are, the protocol version close codes
and the Origin allow-list (§1)."""

from __future__ import annotations

import pytest

from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.handshake import (
    Handshake,
    Refusal,
    accept_key,
    origin_allowed,
    protocol_problem,
    read_handshake,
)
from ressonance.protocol.request_head import RequestHead, read_head
from tests.protocol.test_request_head import KEY, UPGRADE_HEADERS, head, upgrade, without


def handshake_of(wire: bytes) -> Handshake | None:
    request = read_head(wire)
    assert isinstance(request, RequestHead), request
    return read_handshake(request, "app-key")


def test_accept_key_is_rfc_6455_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_pusher_js_upgrade() -> None:
    wire = upgrade(
        "/app/app-key?protocol=7&client=js&version=8.4.0&flash=false",
        *UPGRADE_HEADERS,
        "Origin: https://app.example.com",
        "X-Forwarded-For: 198.51.100.7, 10.0.0.1",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    )
    assert handshake_of(wire) == Handshake(
        key="app-key",
        query={"protocol": "7", "client": "js", "version": "8.4.0", "flash": "false"},
        origin="https://app.example.com",
        forwarded_for=("198.51.100.7, 10.0.0.1",),
    )


@pytest.mark.parametrize(
    "headers",
    [
        (
            "Upgrade: WebSocket",
            "Connection: keep-alive, Upgrade",
            f"Sec-WebSocket-Key: {KEY}",
            "Sec-WebSocket-Version: 13",
        ),
        (
            "upgrade:websocket",
            "connection:upgrade",
            f"sec-websocket-key:\t{KEY} ",
            "sec-websocket-version: 8",
        ),
        (
            "Upgrade: websocket",
            "Connection: upgrade",
            f"Sec-WebSocket-Key: {KEY}",
            "Sec-WebSocket-Version: 7",
        ),
    ],
)
def test_upgrade_header_spellings(headers: tuple[str, ...]) -> None:
    handshake = handshake_of(upgrade("/app/k", "Host: x", *headers))
    assert handshake == Handshake("app-key", {}, None, ())


@pytest.mark.parametrize(
    "wire",
    [
        upgrade("/app/k", *without(UPGRADE_HEADERS, "Upgrade")),
        upgrade("/app/k", *without(UPGRADE_HEADERS, "Upgrade"), "Upgrade: h2c"),
        upgrade("/app/k", *without(UPGRADE_HEADERS, "Connection")),
        upgrade("/app/k", *without(UPGRADE_HEADERS, "Connection"), "Connection: keep-alive"),
        upgrade("/app/k", *without(UPGRADE_HEADERS, "Sec-WebSocket-Version")),
        upgrade(
            "/app/k",
            *without(UPGRADE_HEADERS, "Sec-WebSocket-Version"),
            "Sec-WebSocket-Version: 12",
        ),
        upgrade("/app/k", *without(UPGRADE_HEADERS, "Sec-WebSocket-Key")),
        upgrade(
            "/app/k",
            *without(UPGRADE_HEADERS, "Sec-WebSocket-Key"),
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
        ),
        upgrade(
            "/app/k",
            *without(UPGRADE_HEADERS, "Sec-WebSocket-Key"),
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!",
        ),
        upgrade("/app/k", *UPGRADE_HEADERS, "Sec-WebSocket-Protocol: chat"),
        upgrade("/app/k", *UPGRADE_HEADERS, "Content-Length: 0"),
        upgrade("/app/k", *UPGRADE_HEADERS, "Transfer-Encoding: chunked"),
        head("POST /app/k HTTP/1.1", *UPGRADE_HEADERS),
        head("GET /app/k HTTP/1.1", "Host: x"),  # no upgrade headers: aiohttp's 400
    ],
)
def test_upgrades_left_to_the_web_library(wire: bytes) -> None:
    assert handshake_of(wire) is None


UNSUPPORTED = "; 5 to 7 are supported"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # pusher-js 8 sends protocol=7; 5 and 6 behave the same on the wire.
        ({"protocol": "7", "client": "js", "version": "8.6.0"}, None),
        ({"protocol": "6"}, None),
        ({"protocol": "5"}, None),
        ({}, Refusal(ErrorCode.NO_PROTOCOL_VERSION, "No protocol version supplied")),
        ({"protocol": ""}, Refusal(ErrorCode.NO_PROTOCOL_VERSION, "No protocol version supplied")),
        (
            {"protocol": "seven"},
            Refusal(ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: seven"),
        ),
        (
            {"protocol": "7.0"},
            Refusal(ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: 7.0"),
        ),
        (
            {"protocol": "-7"},
            Refusal(ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: -7"),
        ),
        (
            {"protocol": "x" * 50},
            Refusal(ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: " + "x" * 20),
        ),
        # Unicode digits are not a version string: "²" passes str.isdigit() but not int().
        (
            {"protocol": "²"},
            Refusal(ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: ²"),
        ),
        (
            {"protocol": "\uff17"},  # FULLWIDTH DIGIT SEVEN
            Refusal(ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: \uff17"),
        ),
        (
            {"protocol": "4"},
            Refusal(
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 4" + UNSUPPORTED,
            ),
        ),
        (
            {"protocol": "8"},
            Refusal(
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 8" + UNSUPPORTED,
            ),
        ),
        (
            {"protocol": "1"},
            Refusal(
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 1" + UNSUPPORTED,
            ),
        ),
    ],
)
def test_protocol_version_close_code(query: dict[str, str], expected: Refusal | None) -> None:
    assert protocol_problem(query) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        # Longer than int()'s 4300-digit limit, yet short enough for an HTTP request line.
        (
            "9" * 5000,
            Refusal(
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version " + "9" * 20 + UNSUPPORTED,
            ),
        ),
        (
            "0000000007",
            Refusal(
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 0000000007" + UNSUPPORTED,
            ),
        ),
        ("000000007", None),
        (
            "\u00b2" * 100,
            Refusal(
                ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: " + "\u00b2" * 20
            ),
        ),
    ],
)
def test_long_versions_give_a_close_reason_that_fits_a_close_frame(
    version: str, expected: Refusal | None
) -> None:
    problem = protocol_problem({"protocol": version})

    assert problem == expected
    # RFC 6455 §5.5: a close frame carries at most 123 bytes of reason.
    assert problem is None or len(problem.reason.encode()) <= 123


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        # Server-side clients (the SDKs, curl) send no Origin.
        (None, ("https://app.example.com",), True),
        ("https://evil.example", ("*",), True),
        ("https://evil.example", ("https://app.example.com", "*"), True),
        ("https://app.example.com", ("https://app.example.com",), True),
        ("https://app.example.com", ("app.example.com",), True),
        ("https://APP.example.com", ("app.example.com",), True),
        ("https://a.example.com", ("*.example.com",), True),
        ("http://localhost:8080", ("localhost:*",), True),
        ("https://app.example.com", ("https://*",), True),
        ("https://example.com", ("*.example.com",), False),
        ("https://evil.example", ("app.example.com",), False),
        ("https://app.example.com.evil", ("app.example.com",), False),
        ("https://appXexample.com", ("app.example.com",), False),  # "." is not a wildcard
        ("http://app.example.com", ("https://app.example.com",), False),
        ("https://app.example.com", (), False),
    ],
)
def test_origin_allowed(origin: str | None, allowed: tuple[str, ...], expected: bool) -> None:
    assert origin_allowed(origin, allowed) is expected
