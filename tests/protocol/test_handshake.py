"""Connect-time checks: the protocol version close codes and the Origin allow-list (§1)."""

from __future__ import annotations

import pytest

from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.handshake import origin_allowed, protocol_problem

UNSUPPORTED = "; 5 to 7 are supported"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # pusher-js 8 sends protocol=7; 5 and 6 behave the same on the wire.
        ({"protocol": "7", "client": "js", "version": "8.6.0"}, None),
        ({"protocol": "6"}, None),
        ({"protocol": "5"}, None),
        ({}, (ErrorCode.NO_PROTOCOL_VERSION, "No protocol version supplied")),
        ({"protocol": ""}, (ErrorCode.NO_PROTOCOL_VERSION, "No protocol version supplied")),
        (
            {"protocol": "seven"},
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: seven"),
        ),
        (
            {"protocol": "7.0"},
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: 7.0"),
        ),
        (
            {"protocol": "-7"},
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: -7"),
        ),
        (
            {"protocol": "x" * 50},
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: " + "x" * 20),
        ),
        # Unicode digits are not a version string: "²" passes str.isdigit() but not int().
        (
            {"protocol": "²"},
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: ²"),
        ),
        (
            {"protocol": "\uff17"},  # FULLWIDTH DIGIT SEVEN
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: \uff17"),
        ),
        (
            {"protocol": "4"},
            (
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 4" + UNSUPPORTED,
            ),
        ),
        (
            {"protocol": "8"},
            (
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 8" + UNSUPPORTED,
            ),
        ),
        (
            {"protocol": "1"},
            (
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 1" + UNSUPPORTED,
            ),
        ),
    ],
)
def test_protocol_version_close_code(
    query: dict[str, str], expected: tuple[ErrorCode, str] | None
) -> None:
    assert protocol_problem(query) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        # Longer than int()'s 4300-digit limit, yet short enough for an HTTP request line.
        (
            "9" * 5000,
            (
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version " + "9" * 20 + UNSUPPORTED,
            ),
        ),
        (
            "0000000007",
            (
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version 0000000007" + UNSUPPORTED,
            ),
        ),
        ("000000007", None),
        (
            "\u00b2" * 100,
            (ErrorCode.INVALID_VERSION_FORMAT, "Invalid version string format: " + "\u00b2" * 20),
        ),
    ],
)
def test_long_versions_give_a_close_reason_that_fits_a_close_frame(
    version: str, expected: tuple[ErrorCode, str] | None
) -> None:
    problem = protocol_problem({"protocol": version})

    assert problem == expected
    # RFC 6455 §5.5: a close frame carries at most 123 bytes of reason.
    assert problem is None or len(problem[1].encode()) <= 123


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
