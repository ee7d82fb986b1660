"""Which addresses webhook requests may reach (the `webhook_allowed_networks` setting).

The setting is a list of keywords and networks: `public`, `private` (RFC 1918, unique local
IPv6...), `loopback`, and CIDRs such as "10.1.0.0/16". The default, ["public", "private",
"loopback"], lets self-hosted apps live next to the server; a multi-tenant operator sets
["public"] so that tenants cannot make the server call its own network.

Rules:
1. An address is checked as connected to: the webhook client resolves names itself and
   connects only to the addresses this allows (server/webhook_client.py), so a name that
   resolves to a refused address (DNS rebinding included) is refused.
2. Never by a keyword: link-local (169.254.0.0/16, fe80::/10, where cloud metadata lives),
   multicast, unspecified, reserved and shared (100.64.0.0/10) addresses, and the known
   metadata addresses (`METADATA`, some of which are public or private). A CIDR listed
   explicitly allows what it covers, metadata included: the operator said so.
3. An IPv4 address written as IPv6 (::ffff:169.254.169.254) is checked as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KEYWORDS: Final = ("public", "private", "loopback")
DEFAULT_ALLOWED: Final = KEYWORDS
METADATA: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2/32",  # AWS ECS task metadata
        "fd00:ec2::254/128",  # AWS over IPv6 (inside unique local fc00::/7)
        "100.100.100.200/32",  # Alibaba Cloud
        "168.63.129.16/32",  # Azure WireServer (a public address)
    )
)


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    public: bool = True
    private: bool = True
    loopback: bool = True
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> NetworkPolicy:
        """The policy of a `webhook_allowed_networks` list; ValueError naming a bad item."""
        names = set()
        networks = []
        for item in items:
            if item in KEYWORDS:
                names.add(item)
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"{item[:50]!r} is neither {', '.join(KEYWORDS)} nor an address or CIDR"
                ) from None
        return cls("public" in names, "private" in names, "loopback" in names, tuple(networks))

    def allows(self, address: str) -> bool:
        """Whether a webhook request may connect to `address` (an IP address as text)."""
        try:
            ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return True
        if any(ip in network for network in METADATA):
            return False
        if ip.is_loopback:
            return self.loopback
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            return False
        if ip.is_private:
            return self.private
        return ip.is_global and self.public
