"""Deadlines of the phases a client controls, checked by one sweep a tick: no timer per connection.

A connection on the front door is always in one phase, each with its deadline
(`ConnectionLimits`): waiting for its first byte, sending a request (head, and the body of a
publish), or idle between two requests. A WebSocket whose 101 has left is opening until its
session starts. A door that answered a refusal lingers briefly (reading and discarding) so
the client reads the answer before the connection closes.

Rules:
1. Time is counted in ticks (`TICK_SECONDS`), advanced by the listener's sweep; nothing here
   reads a clock. An item due in `seconds` expires between `seconds` and one tick later.
2. Starting, moving or cancelling a deadline is a few dict operations, and a tick touches
   only the items due in it (and the requests whose rate is checked): every item of a phase
   waits as long, so the items of a phase fall due in the order they entered it.
3. A request must also keep up a minimum rate: from its second tick on, it is checked once a
   tick, and closed when fewer than `min_request_bytes_per_sec` bytes arrived per whole
   tick since its first byte (a slow-loris trickle ends in seconds, not at the deadline).
4. Only items in a client-controlled phase are ever returned as expired; what to do with
   them (close, answer 408) is the caller's.
5. The items of each phase are also kept in the order they entered it, so the oldest of a
   phase is found without a scan (`oldest`: what the census sheds first).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from enum import StrEnum
from typing import Final, Generic, Protocol, TypeVar

from ressonance.server.limits import ConnectionLimits

TICK_SECONDS: Final = 1.0
LINGER_SECONDS: Final = 2.0  # after a refusal: time for the client to read it

T = TypeVar("T", bound=Hashable)


class Phase(StrEnum):
    """What a connection is waiting for; each value is also the reason it is closed (a
    metrics label) when the wait is over."""

    FIRST_BYTE = "first_byte_timeout"
    REQUEST = "request_timeout"
    TOO_SLOW = "request_too_slow"
    KEEPALIVE = "keepalive_timeout"
    UPGRADE = "upgrade_timeout"
    LINGER = "linger"


def ticks(seconds: float) -> int:
    """Ticks to wait so that at least `seconds` pass, whenever in a tick it starts."""
    return math.ceil(seconds / TICK_SECONDS) + 1


class Reading(Hashable, Protocol):
    """What the deadlines read of a connection in its request phase."""

    def pending_bytes(self) -> int:
        """Bytes of the request in progress received so far."""
        ...


R = TypeVar("R", bound=Reading)


class Deadlines(Generic[R]):
    """The phase and deadline of each connection of one listener.

    Every item of a phase waits as long, so the items of a phase, kept in the order they
    entered it, also fall due in that order: a tick takes them from the front until one is
    not due (rule 2, without a wheel: starting or stopping a phase is two dict operations).
    """

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits = limits or ConnectionLimits()
        self.now = 0  # the ticks advanced so far
        # connection -> (phase, tick it started, tick its deadline falls)
        self._phases: dict[R, tuple[Phase, int, int]] = {}
        self._ticks = {
            Phase.FIRST_BYTE: ticks(limits.first_byte_timeout),
            Phase.REQUEST: ticks(limits.request_timeout),
            Phase.KEEPALIVE: ticks(limits.keepalive_timeout),
            Phase.LINGER: ticks(LINGER_SECONDS),
        }
        self._members: dict[Phase, dict[R, None]] = {phase: {} for phase in self._ticks}
        self._rate = limits.min_request_bytes_per_sec if limits.rate_checked else 0

    def __len__(self) -> int:
        return len(self._phases)

    def start(self, item: R, phase: Phase) -> None:
        """`item` enters `phase` now; its deadline replaces any earlier one."""
        now = self.now
        old = self._phases.get(item)
        if old is not None:
            del self._members[old[0]][item]
        self._phases[item] = (phase, now, now + self._ticks[phase])
        self._members[phase][item] = None  # the newest of its phase

    def stop(self, item: R) -> None:
        """`item` left every timed phase (a request is being answered, or it is gone)."""
        state = self._phases.pop(item, None)
        if state is not None:
            del self._members[state[0]][item]

    def phase(self, item: R) -> Phase | None:
        state = self._phases.get(item)
        return None if state is None else state[0]

    def started(self, item: R) -> int:
        """The tick `item` entered its phase (`now` when it has none)."""
        state = self._phases.get(item)
        return self.now if state is None else state[1]

    def tick(self) -> list[tuple[R, Phase]]:
        """Advance one tick; every item whose phase is over, with the reason."""
        self.now += 1
        expired: list[tuple[R, Phase]] = []
        for phase, members in self._members.items():
            rated = phase is Phase.REQUEST and self._rate > 0
            for item in members:
                reason = self._verdict(item, rated)
                if reason is not None:
                    expired.append((item, reason))
                elif not rated:
                    break  # the next ones entered later: not due either
        for item, _reason in expired:
            del self._members[self._phases.pop(item)[0]][item]
        return expired

    def _verdict(self, item: R, rated: bool) -> Phase | None:
        phase, started, deadline = self._phases[item]
        now = self.now
        if now >= deadline:
            return phase
        # A request is checked from its second tick on (rule 3).
        if rated and item.pending_bytes() < self._rate * (now - started - 1):
            return Phase.TOO_SLOW
        return None

    def oldest(self, phase: Phase) -> Iterator[R]:
        """The items in `phase` that entered it before this tick, the longest in it first
        (take what is needed before changing anything)."""
        now = self.now
        phases = self._phases
        for item in self._members[phase]:
            if phases[item][1] >= now:
                return
            yield item


class Openings(Generic[T]):
    """WebSockets between their 101 and their session: each must open in `upgrade_timeout`
    (all wait as long, so they fall due in the order they started)."""

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.now = 0
        self._due: dict[T, int] = {}  # item -> tick it falls due, the earliest first
        self._after = ticks((limits or ConnectionLimits()).upgrade_timeout)

    def __len__(self) -> int:
        return len(self._due)

    def start(self, item: T) -> None:
        due = self._due
        if item in due:
            del due[item]  # to the back
        due[item] = self.now + self._after

    def done(self, item: T) -> None:
        self._due.pop(item, None)

    def tick(self) -> list[T]:
        """Advance one tick; the items still opening past their deadline."""
        self.now = now = self.now + 1
        expired = []
        for item, due in self._due.items():
            if due > now:
                break
            expired.append(item)
        for item in expired:
            del self._due[item]
        return expired
