"""What a connection may cost before it is a WebSocket session: deadlines, head sizes, counts.

Issue "Hold the line under hostile traffic". One frozen value, built from the `[server]`
settings (`Settings.connection_limits`), read by the front door (`server.front_door`), its
deadlines (`server.deadlines`), its census (`server.census`) and the aiohttp glue
(`server.transport`), so both ways into the node apply the same numbers.

Rules:
1. Every phase a client controls has a deadline in seconds (never "none"): accept to first
   byte, first byte to a complete request (head and body), idle between requests, the 101 to
   an open session. Deadlines are checked once a tick (`deadlines.TICK_SECONDS`), so each
   fires between its value and one tick later.
2. Size limits are counted in bytes while a head is read, never from what the client
   declares.
3. -1 (`UNLIMITED`) turns off a count or a rate, never a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ressonance.protocol.app import UNLIMITED
from ressonance.protocol.request_head import MAX_HEAD_BYTES, MAX_HEADERS, MAX_LINE_BYTES, HeadLimits

# Past the descriptor capacity, half of the reserve is lent to probe-only connections
# (/healthz, /readyz, /metrics); the other half stays for the node's own files and sockets.
PROBE_SHARE: Final = 2


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The `[server]` settings that bound a connection until it is a session."""

    first_byte_timeout: float = 10.0
    request_timeout: float = 10.0
    min_request_bytes_per_sec: int = 100
    keepalive_timeout: float = 75.0
    upgrade_timeout: float = 10.0
    max_request_head_bytes: int = MAX_HEAD_BYTES
    max_request_line_bytes: int = MAX_LINE_BYTES
    max_pending_connections_per_ip: int = 1024
    reserved_descriptors: int = 128
    trusted_proxies: tuple[str, ...] = ()

    @property
    def head(self) -> HeadLimits:
        """The limits `protocol.request_head` checks while a head arrives."""
        return HeadLimits(self.max_request_head_bytes, self.max_request_line_bytes, MAX_HEADERS)

    @property
    def rate_checked(self) -> bool:
        return self.min_request_bytes_per_sec != UNLIMITED

    @property
    def per_address_limited(self) -> bool:
        return self.max_pending_connections_per_ip != UNLIMITED
