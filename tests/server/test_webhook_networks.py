"""Where webhook requests may go (server/webhook_networks.py) and Retry-After."""

from __future__ import annotations

import pytest

from ressonance.server.webhook_client import retry_after
from ressonance.server.webhook_networks import NetworkPolicy

DEFAULT = NetworkPolicy.parse(["public", "private", "loopback"])
PUBLIC_ONLY = NetworkPolicy.parse(["public"])


@pytest.mark.parametrize(
    ("address", "default", "public_only"),
    [
        ("93.184.216.34", True, True),
        ("2606:2800:220:1::", True, True),
        ("10.1.2.3", True, False),
        ("192.168.0.10", True, False),
        ("172.16.5.4", True, False),
        ("fd12:3456::1", True, False),
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("169.254.169.254", False, False),  # cloud metadata (link-local)
        ("169.254.170.2", False, False),  # ECS task metadata
        ("169.254.1.1", False, False),
        ("fe80::1", False, False),
        ("fe80::1%eth0", False, False),
        ("fd00:ec2::254", False, False),  # AWS metadata over IPv6, inside fc00::/7
        ("100.100.100.200", False, False),  # Alibaba metadata
        ("168.63.129.16", False, False),  # Azure WireServer, a public address
        ("::ffff:169.254.169.254", False, False),
        ("::ffff:127.0.0.1", True, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("100.64.0.1", False, False),  # shared address space
        ("240.0.0.1", False, False),  # reserved
        ("not-an-address", False, False),
    ],
)
def test_which_addresses_each_policy_allows(address: str, default: bool, public_only: bool) -> None:
    assert DEFAULT.allows(address) is default
    assert PUBLIC_ONLY.allows(address) is public_only


def test_an_explicit_network_allows_what_it_covers_metadata_included() -> None:
    policy = NetworkPolicy.parse(["169.254.169.254/32", "10.0.0.0/8"])
    assert policy.allows("169.254.169.254")
    assert policy.allows("10.9.9.9")
    assert not policy.allows("192.168.1.1")
    assert not policy.allows("93.184.216.34")


def test_a_bad_item_is_named() -> None:
    with pytest.raises(ValueError, match="'internet' is neither public, private, loopback"):
        NetworkPolicy.parse(["public", "internet"])


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("99999999", 86_400.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("-1", None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(value: str | None, seconds: float | None) -> None:
    now = 1445412450.0  # 07:27:30 GMT that day
    assert retry_after(value, now) == seconds
