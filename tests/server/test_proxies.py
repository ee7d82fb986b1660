"""The client's address: the TCP peer, or what trusted proxies say in X-Forwarded-For."""

from __future__ import annotations

import pytest

from ressonance.server.proxies import TrustedProxies, parse_address, parse_networks

PROXIES = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        pytest.param("203.0.113.7", [], "203.0.113.7", id="no-header"),
        # A client talking to us directly cannot pick its address with the header.
        pytest.param("203.0.113.7", ["1.2.3.4"], "203.0.113.7", id="untrusted-peer-spoofs"),
        pytest.param("127.0.0.1", ["198.51.100.9"], "198.51.100.9", id="one-proxy"),
        pytest.param("127.0.0.1", [], "127.0.0.1", id="trusted-peer-no-header"),
        # The client's own header is left of what our proxy appended: ignored.
        pytest.param("10.1.2.3", ["6.6.6.6, 198.51.100.9"], "198.51.100.9", id="spoof-via-proxy"),
        # Two proxies of ours: skip both, the first untrusted address is the client.
        pytest.param(
            "127.0.0.1", ["6.6.6.6, 198.51.100.9, 10.0.0.5"], "198.51.100.9", id="proxy-chain"
        ),
        # HAProxy adds a header line of its own instead of appending: still one list.
        pytest.param("127.0.0.1", ["6.6.6.6", "198.51.100.9"], "198.51.100.9", id="two-headers"),
        pytest.param("127.0.0.1", ["10.0.0.9, 10.0.0.5"], "10.0.0.9", id="all-trusted"),
        pytest.param("127.0.0.1", ["garbage, 10.0.0.5"], "10.0.0.5", id="garbage-left-of-proxy"),
        pytest.param("127.0.0.1", ["nonsense"], "127.0.0.1", id="garbage-only"),
        pytest.param("127.0.0.1", [" , "], "127.0.0.1", id="empty-entries"),
        pytest.param("127.0.0.1", ["198.51.100.9:4711"], "198.51.100.9", id="ipv4-with-port"),
        pytest.param("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1", id="ipv6-bracketed"),
        pytest.param("fd00::1", ["2001:db8::1"], "2001:db8::1", id="ipv6-proxy"),
        pytest.param("::ffff:10.0.0.1", ["198.51.100.9"], "198.51.100.9", id="mapped-peer"),
        pytest.param("::ffff:203.0.113.7", [], "203.0.113.7", id="mapped-untrusted"),
        pytest.param(None, ["1.2.3.4"], "unknown", id="no-peer"),
        pytest.param("/run/ressonance.sock", [], "/run/ressonance.sock", id="unix-socket"),
    ],
)
def test_client_ip(peer: str | None, forwarded_for: list[str], client: str) -> None:
    assert PROXIES.client_ip(peer, forwarded_for) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert TrustedProxies().client_ip("127.0.0.1", ["198.51.100.9"]) == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.2.3.4", "1.2.3.4"), ("[::1", None), ("::1", "::1"), ("[::1]", "::1"), ("x:1", None)],
)
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


def test_parse_networks_names_the_bad_entry() -> None:
    assert [str(n) for n in parse_networks(["10.0.0.1/8", "::1"])] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError, match=r"^'10\.0\.0\.0/33' is not an IP address or CIDR"):
        parse_networks(["127.0.0.1", "10.0.0.0/33"])
