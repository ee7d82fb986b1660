"""Whether a new WebSocket may become a session: node saturation and connection rates.

Issue "Apps, plans and protection" §4. Checked once per WebSocket, after the app is known
(`Gate.open`), in this order; the first that says no refuses the connection:

1. The node is saturated: it holds `max_node_connections` sessions, or its event loop lags
   more than `max_loop_lag_ms` (the lag the node's timer loop measured last,
   `metrics.loop_lag`). Nothing is counted against the client for it.
2. More than `max_connections_per_ip_per_sec` new connections from the client's address in
   this second, counted on this node only (fixed one-second windows; a dict of the addresses
   seen this second, so memory is bounded by one second's traffic), while the node is under
   pressure (`per_ip_rate_when = "under_pressure"`, the default) or at all times
   (`"always"`). Under pressure means: the loop lags more than a quarter of
   `max_loop_lag_ms`, or the node holds three quarters of `max_node_connections` or of its
   descriptor capacity (`metrics.connection_capacity`). A node with room admits any burst
   from one address (a load test, an office behind one NAT, every client behind a proxy
   not listed in `trusted_proxies`); a node short of room refuses first the addresses that
   open the most. Connections are counted in both modes, so an address that opened many
   this second is the first refused when pressure comes. The address is the peer's, or
   what a trusted proxy says (`server.proxies`). IPv6 addresses count per /64, the block
   one host usually holds, so rotating through it gains nothing.
3. More than the app's `max_connections_per_sec` new connections, counted by the rate
   limiter of the app-wide quotas (`Quotas.limiter`: shared by every node of a cluster,
   like the app's other rates). When it cannot be reached, an app with this limit is
   refused (a limit that cannot be checked is not waived); apps without one are served.

Every refusal is close code 4100, "over capacity", so pusher-js reconnects after 1 s (§7):
a rate is never worth a 4000-4099 or 43xx code, which stop pusher-js for good. The reason
names the setting that refused. The HTTP API is not subject to any of this.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.handshake import Refusal
from ressonance.server.metrics import Metrics
from ressonance.server.proxies import TrustedProxies, parse_address
from ressonance.state.base import RateLimiter

log = logging.getLogger(__name__)

_Hit = tuple[str, str]  # the setting that refused, and the reason the client reads

UNDER_PRESSURE: Final = "under_pressure"
ALWAYS: Final = "always"
PER_IP_RATE_MODES: Final = (UNDER_PRESSURE, ALWAYS)
DEFAULT_LOOP_LAG_MS: Final = 2000
# Under pressure: the loop lags more than this share of max_loop_lag_ms (of the default when
# that is off), or the node holds this share of its connection or descriptor capacity.
PRESSURE_LAG_SHARE: Final = 0.25
PRESSURE_CAPACITY_SHARE: Final = 0.75


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """Server-wide limits on new WebSockets (`[server]` settings); -1 is no limit."""

    max_connections_per_ip_per_sec: int = 60
    max_node_connections: int = UNLIMITED
    max_loop_lag_ms: int = DEFAULT_LOOP_LAG_MS
    trusted_proxies: tuple[str, ...] = ()
    per_ip_rate_when: str = UNDER_PRESSURE


class Admission:
    """The one check a new WebSocket passes before it becomes a session."""

    def __init__(
        self,
        limits: AdmissionLimits | None = None,
        *,
        sessions: Sized,
        metrics: Metrics,
        clock: Callable[[], float],
        limiter: RateLimiter,
    ) -> None:
        """`sessions` are the node's (only their number is read); `limiter` is the app-wide
        quotas' rate limiter, shared by every node of a cluster."""
        self.sessions = sessions
        self.metrics = metrics
        self.clock = clock
        self.limiter = limiter
        self.limits = limits or AdmissionLimits()
        self.proxies = TrustedProxies.parse(self.limits.trusted_proxies)
        self._window = -1
        self._per_ip: dict[str, int] = {}
        # (peer, X-Forwarded-For) -> (client address, rate key), this second's only.
        self._addresses: dict[tuple[str | None, tuple[str, ...]], tuple[str, str]] = {}

    async def admit(
        self, app: App, peer: str | None, forwarded_for: Iterable[str] = ()
    ) -> Refusal | None:
        """None to let the connection in, else the close code and the reason."""
        hit = self._saturated()
        if hit is None:
            hit = self._over_ip_rate(peer, forwarded_for)
        if hit is None:
            hit = await self._over_app_rate(app)
        if hit is None:
            return None
        setting, reason = hit
        self.metrics.connection_throttled(setting)
        return Refusal(ErrorCode.OVER_CAPACITY, reason)

    def _saturated(self) -> _Hit | None:
        limits = self.limits
        most = limits.max_node_connections
        if most != UNLIMITED and len(self.sessions) >= most:
            return "max_node_connections", (
                f"Server over capacity: this node holds its maximum of {most} connections; "
                "retry later (max_node_connections)"
            )
        lag_ms = self.metrics.loop_lag * 1000
        if limits.max_loop_lag_ms != UNLIMITED and lag_ms > limits.max_loop_lag_ms:
            return "max_loop_lag_ms", (
                f"Server over capacity: event loop lag {lag_ms:.0f} ms is over "
                f"{limits.max_loop_lag_ms} ms; retry later (max_loop_lag_ms)"
            )
        return None

    def under_pressure(self) -> bool:
        """Whether the node is short of room: its loop lags, or it is nearly full."""
        limits, metrics = self.limits, self.metrics
        lag_ms = (
            DEFAULT_LOOP_LAG_MS if limits.max_loop_lag_ms == UNLIMITED else limits.max_loop_lag_ms
        )
        if metrics.loop_lag * 1000 > lag_ms * PRESSURE_LAG_SHARE:
            return True
        most = limits.max_node_connections
        if most != UNLIMITED and len(self.sessions) >= most * PRESSURE_CAPACITY_SHARE:
            return True
        capacity = metrics.connection_capacity
        return capacity is not None and metrics.open_connections >= (
            capacity * PRESSURE_CAPACITY_SHARE
        )

    def _over_ip_rate(self, peer: str | None, forwarded_for: Iterable[str]) -> _Hit | None:
        limit = self.limits.max_connections_per_ip_per_sec
        if limit == UNLIMITED:
            return None  # the address is not even parsed
        window = math.floor(self.clock())
        if window != self._window:
            self._window = window
            self._per_ip.clear()
            self._addresses.clear()
        # Parsing an address costs more than the rest of the check: once per peer per second.
        seen = (peer, tuple(forwarded_for))
        address = self._addresses.get(seen)
        if address is None:
            client_ip = self.proxies.client_ip(peer, seen[1])
            address = self._addresses[seen] = (client_ip, rate_key(client_ip))
        client_ip, key = address
        count = self._per_ip.get(key, 0)
        if count >= limit:
            if self.limits.per_ip_rate_when == ALWAYS:
                return "max_connections_per_ip_per_sec", (
                    f"Too many connections from {client_ip}: more than {limit} per second; "
                    "retry later (max_connections_per_ip_per_sec)"
                )
            if self.under_pressure():
                return "max_connections_per_ip_per_sec", (
                    f"Too many connections from {client_ip}: more than {limit} per second "
                    "while the server is under pressure; retry later "
                    "(max_connections_per_ip_per_sec)"
                )
        self._per_ip[key] = count + 1
        return None

    async def _over_app_rate(self, app: App) -> _Hit | None:
        limit = app.max_connections_per_sec
        if limit == UNLIMITED:
            return None
        try:
            decision = await self.limiter.consume(f"connections:{app.id}", limit)
        except Exception as exc:  # the shared store is down
            log.warning("event=connection_rate_unavailable app_id=%s error=%r", app.id, exc)
            return "max_connections_per_sec", (
                "The app's connection rate cannot be checked now; "
                "retry later (max_connections_per_sec)"
            )
        if decision.allowed:
            return None
        return "max_connections_per_sec", (
            f"Too many new connections to this app: more than {limit} per second; "
            "retry later (max_connections_per_sec)"
        )


def rate_key(client_ip: str) -> str:
    """What a per-address limit counts: the address, or its /64 for IPv6."""
    address = parse_address(client_ip)
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return client_ip
