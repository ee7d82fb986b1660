"""Which address a connection comes from: its peer, or what trusted proxies say it is.

Rules:
1. Without trusted proxies (the default) the client is the TCP peer, whatever headers say.
2. When the peer is a trusted proxy, `X-Forwarded-For` is read from the right (the hop the
   peer itself added) to the left, skipping trusted proxies; the first address that is not a
   trusted proxy is the client. Everything left of it was written by the client or by
   proxies we do not trust, so a client cannot pick its own address by sending the header.
   Several `X-Forwarded-For` headers count as one list, in order (RFC 9110 §5.3).
3. When every hop is trusted, the left-most is the client; an entry that is not an address
   stops the walk, and the last trusted hop is the answer (a proxy of ours wrote garbage).
4. IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, from a dual-stack listener) are their IPv4
   address, so `10.0.0.0/8` trusts them too.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

UNKNOWN = "unknown"  # a peer without an IP address (a Unix socket)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks (`"127.0.0.1"`, `"10.0.0.0/8"`, `"fd00::/8"`).

    Raises ValueError naming the first entry that is neither.
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry[:60]!r} is not an IP address or CIDR block") from None
    return tuple(networks)


class TrustedProxies:
    """The proxies whose `X-Forwarded-For` is believed."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(parse_networks(entries))

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client_ip(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The client's address as text: the peer's, or the one trusted proxies vouch for."""
        address = parse_address(peer) if peer else None
        if address is None:
            return peer or UNKNOWN
        if not self.networks or not self.trusts(address):
            return str(address)
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            forwarded = parse_address(hop)
            if forwarded is None:
                break
            address = forwarded
            if not self.trusts(address):
                break
        return str(address)
