"""Counting a node's connections from their first moment, per address and against its descriptors.

Every accepted connection (TCP, or TLS after its handshake) is counted when the front door
sees it, before a byte is read, until it is a WebSocket or gone; WebSockets are counted by
their own set (`websockets`). So silent sockets and half-sent heads count like any other.

Rules:
1. Per address (the TCP peer; IPv6 per /64, as `admission.rate_key`): at most
   `max_pending_connections_per_ip` connections that are not WebSockets (opening, sending a
   request, idle between requests). A new one past it makes room by closing the address's
   oldest such connection that is idle or half-sent and older than this tick; with none, the
   new one is closed. Trusted proxies are not limited (their clients are counted per
   address after the head, by `admission`).
2. Per node: the descriptor budget read at start (`descriptor_budget`): RLIMIT_NOFILE's soft
   limit (raised to the hard limit), less the descriptors already open, less
   `reserved_descriptors`, is the capacity. A connection past it first sheds one that is
   older than this tick and not busy: lingering after a refusal, else the longest silent,
   else the longest sending its request, else the longest idle (`SHED_ORDER`); with nothing
   to shed it is admitted
   for probes only (`/healthz`, `/readyz`, `/metrics`, `probes_only`) while it fits in half
   the reserve, and closed at once past that. The other half of the reserve stays for the
   node's own files and backend sockets, so `accept()` never fails for want of a descriptor.
3. A busy connection (a request being answered) is never shed.
4. Sheds and refusals are counted by reason (`dropped`) and logged at most once every
   `LOG_EVERY_TICKS` ticks, as one key=value summary line.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from ressonance.server.admission import rate_key
from ressonance.server.deadlines import Deadlines, Phase, Reading, ticks
from ressonance.server.limits import PROBE_SHARE, ConnectionLimits
from ressonance.server.proxies import TrustedProxies, parse_address

log = logging.getLogger(__name__)

LOG_EVERY_TICKS: Final = 10
MAX_RAISED_DESCRIPTORS: Final = 1 << 20  # Linux's default fs.nr_open
SHED_SCAN: Final = 8  # oldest connections of a phase or an address looked at for one to shed
SHED_ORDER: Final = (Phase.LINGER, Phase.FIRST_BYTE, Phase.REQUEST, Phase.KEEPALIVE)
PROBE_PATHS: Final = ("/healthz", "/readyz", "/metrics")


class Pending(Reading, Protocol):
    """A connection that is not a WebSocket yet, as the census sees it (a front door)."""

    probes_only: bool

    @property
    def transport(self) -> asyncio.Transport: ...

    @property
    def busy(self) -> bool:
        """A request is being answered: it must not be cut."""
        ...


D = TypeVar("D", bound=Pending)


@dataclass(frozen=True, slots=True)
class DescriptorBudget:
    """The descriptors a node may spend on connections."""

    limit: int | None  # RLIMIT_NOFILE's soft limit; None when there is none
    in_use: int  # open when it was read
    reserve: int

    @property
    def capacity(self) -> int | None:
        """Connections served normally; at least half of what is left after `in_use`."""
        if self.limit is None:
            return None
        free = self.limit - self.in_use
        return max(free - self.reserve, free // 2, 1)


def descriptor_budget(reserve: int) -> DescriptorBudget:
    """Read (after raising the soft limit to the hard one, as Go does) the descriptor limit,
    and log what was read (once per listener, at start)."""
    budget = _read_budget(reserve)
    log.info(
        "event=descriptors limit=%s in_use=%d reserved=%d capacity=%s",
        budget.limit,
        budget.in_use,
        budget.reserve,
        budget.capacity,
    )
    return budget


def _read_budget(reserve: int) -> DescriptorBudget:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return DescriptorBudget(None, 0, reserve)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_RAISED_DESCRIPTORS if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return DescriptorBudget(None, 0, reserve)
    return DescriptorBudget(soft, descriptors_in_use(), reserve)


def descriptors_in_use() -> int:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory)) - 1  # less the one listing it
        except OSError:
            continue
    return 0  # pragma: no cover - neither exists


def address_of(transport: asyncio.BaseTransport) -> str:
    """What a per-address limit counts for a connection: its peer, or its /64 for IPv6."""
    peername = transport.get_extra_info("peername")
    if not isinstance(peername, tuple | list) or not peername:
        return "unknown"  # a Unix socket, or a transport that does not say
    host = str(peername[0])
    return rate_key(host) if ":" in host else host


class Census(Generic[D]):
    """The connections of one listener that are not WebSockets, by address."""

    def __init__(
        self,
        deadlines: Deadlines[D],
        *,
        websockets: Callable[[], int] = lambda: 0,
        capacity: int | None = None,
        dropped: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.deadlines = deadlines
        self.limits: ConnectionLimits = deadlines.limits
        self.capacity = capacity
        self._websockets = websockets
        self._dropped = dropped
        self._proxies = TrustedProxies.parse(self.limits.trusted_proxies)
        self._entries: dict[D, tuple[str, int]] = {}  # door -> (address, tick it arrived)
        self._by_address: dict[str, dict[D, None]] = {}  # the doors of each, oldest first
        self._counts: dict[str, int] = {}  # doors and handed-on connections, per address
        # Connections the web library took: transport -> (address, tick, for probes only)
        self._handed: dict[asyncio.BaseTransport, tuple[str, int, bool]] = {}
        self._probe_ticks = ticks(self.limits.request_timeout)
        self._events: dict[str, int] = {}  # sheds and refusals since the last log line
        self._logged = -LOG_EVERY_TICKS  # the first shed is logged at once
        self.pending = 0  # counted connections that are not WebSockets
        # Doors an address may have before `_room_at` decides (None: no per-address limit).
        self._address_limit = (
            self.limits.max_pending_connections_per_ip if self.limits.per_address_limited else None
        )

    def open_connections(self) -> int:
        return self.pending + self._websockets()

    def count(self, address: str) -> int:
        return self._counts.get(address, 0)

    # --- a connection's life -------------------------------------------------------------

    def arrive(self, door: D) -> bool:
        """Count a new connection; False when it had to be closed at once."""
        address = address_of(door.transport)
        count = self._counts.get(address, 0)
        limit = self._address_limit
        if limit is not None and count >= limit and not self._room_at(address):
            return self._refuse(door, "per_address_limit")
        capacity = self.capacity
        if capacity is not None and self.pending + self._websockets() >= capacity:
            victim = self._sheddable()
            if victim is not None:
                self._shed(victim, "shed_for_capacity")
            elif self.open_connections() >= capacity + self.limits.reserved_descriptors // (
                PROBE_SHARE
            ):
                return self._refuse(door, "descriptor_reserve")
            else:
                door.probes_only = True
                self._note("probes_only")
        self._entries[door] = (address, self.deadlines.now)
        doors = self._by_address.get(address)
        if doors is None:
            doors = self._by_address[address] = {}
        doors[door] = None
        self._counts[address] = self._counts.get(address, 0) + 1  # _room_at may have shed one
        self.pending += 1
        self.deadlines.start(door, Phase.FIRST_BYTE)
        return True

    def leave(self, door: D) -> None:
        """`door` is gone, or a WebSocket now (counted by `websockets`)."""
        entry = self._entries.pop(door, None)
        if entry is None:
            return
        self.deadlines.stop(door)
        address = entry[0]
        doors = self._by_address[address]
        del doors[door]
        if not doors:
            del self._by_address[address]
        self._uncount(address)

    def hand_on(self, door: D) -> None:
        """The web library took the connection: counted until its transport closes."""
        entry = self._entries.get(door)
        if entry is None:
            return
        self.leave(door)
        self._counts[entry[0]] = self._counts.get(entry[0], 0) + 1
        self.pending += 1
        self._handed[door.transport] = (entry[0], self.deadlines.now, door.probes_only)

    def upgraded(self, transport: asyncio.BaseTransport) -> None:
        """The web library answered an upgrade: the connection is a WebSocket now."""
        entry = self._handed.pop(transport, None)
        if entry is not None:
            self._uncount(entry[0])

    def tick(self) -> None:
        """Forget handed-on connections that closed, end probe-only ones that outlived a
        request, and log what was shed (after the deadlines' tick)."""
        now = self.deadlines.now
        for transport, (address, since, probes) in list(self._handed.items()):
            if transport.is_closing():
                del self._handed[transport]
                self._uncount(address)
            elif probes and now - since >= self._probe_ticks:
                transport.close()
        if self._events and now - self._logged >= LOG_EVERY_TICKS:
            self._logged = now
            summary = " ".join(f"{reason}={n}" for reason, n in sorted(self._events.items()))
            self._events.clear()
            log.warning(
                "event=connections_shed %s open=%d capacity=%s",
                summary,
                self.open_connections(),
                self.capacity,
            )

    # --- making room ---------------------------------------------------------------------

    def _room_at(self, address: str) -> bool:
        """Whether `address`, at its limit, may open one more connection (after shedding
        one if need be)."""
        parsed = parse_address(address.partition("/")[0])
        if parsed is not None and self._proxies.trusts(parsed):
            return True
        now = self.deadlines.now
        for scanned, (door, _) in enumerate(self._by_address.get(address, {}).items()):
            if scanned == SHED_SCAN or self._entries[door][1] >= now:
                break
            if not door.busy:
                self._shed(door, "shed_per_address")
                return True
        return False

    def _sheddable(self) -> D | None:
        """The connection to close for a new one (`SHED_ORDER`), if any."""
        for phase in SHED_ORDER:
            for scanned, door in enumerate(self.deadlines.oldest(phase)):
                if scanned == SHED_SCAN:
                    break
                if not door.busy:
                    return door
        return None

    def _shed(self, door: D, reason: str) -> None:
        self.leave(door)
        door.transport.abort()
        self._dropped(reason)
        self._note(reason)

    def _refuse(self, door: D, reason: str) -> bool:
        door.transport.abort()
        self._dropped(reason)
        self._note(reason)
        return False

    def _note(self, reason: str) -> None:
        self._events[reason] = self._events.get(reason, 0) + 1

    def _uncount(self, address: str) -> None:
        count = self._counts[address] - 1
        if count:
            self._counts[address] = count
        else:
            del self._counts[address]
        self.pending -= 1
