"""Deadlines of the phases a client controls, checked by one sweep a tick: no timer per connection.

A connection on the front door is always in one phase, each with its deadline
(`ConnectionLimits`): waiting for its first byte, sending a request (head, and the body of a
publish), or idle between two requests. A WebSocket whose 101 has left is opening until its
session starts. A door that answered a refusal lingers briefly (reading and discarding) so
the client reads the answer before the connection closes.

Rules:
1. Time is counted in ticks (`TICK_SECONDS`), advanced by the listener's sweep; nothing here
   reads a clock. An item due in `seconds` expires between `seconds` and one tick later.
2. A `Wheel` keeps each item in the slot of its due tick: starting, moving or cancelling a
   deadline is a few dict operations, and a tick touches only the items due in it.
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


class Wheel(Generic[T]):
    """Items due at a tick; `advance()` moves one tick on and returns the items due then."""

    __slots__ = ("_due", "_slots", "now")

    def __init__(self) -> None:
        self.now = 0
        self._due: dict[T, int] = {}
        self._slots: dict[int, dict[T, None]] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, item: T) -> bool:
        return item in self._due

    def put(self, item: T, after: int) -> None:
        """`item` is due `after` ticks from now (at least one), and no earlier."""
        due = self.now + max(after, 1)
        old = self._due.get(item)
        if old == due:
            return
        if old is not None:
            del self._slots[old][item]
        self._due[item] = due
        slot = self._slots.get(due)
        if slot is None:
            slot = self._slots[due] = {}
        slot[item] = None

    def cancel(self, item: T) -> None:
        due = self._due.pop(item, None)
        if due is not None:
            del self._slots[due][item]

    def advance(self) -> list[T]:
        self.now += 1
        slot = self._slots.pop(self.now, None)
        if not slot:
            return []
        for item in slot:
            del self._due[item]
        return list(slot)


class Reading(Hashable, Protocol):
    """What the deadlines read of a connection in its request phase."""

    def pending_bytes(self) -> int:
        """Bytes of the request in progress received so far."""
        ...


R = TypeVar("R", bound=Reading)


class Deadlines(Generic[R]):
    """The phase and deadline of each connection of one listener."""

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits = limits or ConnectionLimits()
        self._wheel: Wheel[R] = Wheel()
        # connection -> (phase, tick it started, tick its deadline falls)
        self._phases: dict[R, tuple[Phase, int, int]] = {}
        self._members: dict[Phase, dict[R, None]] = {phase: {} for phase in Phase}
        self._ticks = {
            Phase.FIRST_BYTE: ticks(limits.first_byte_timeout),
            Phase.REQUEST: ticks(limits.request_timeout),
            Phase.KEEPALIVE: ticks(limits.keepalive_timeout),
            Phase.LINGER: ticks(LINGER_SECONDS),
        }
        self._rate = limits.min_request_bytes_per_sec if limits.rate_checked else 0

    def __len__(self) -> int:
        return len(self._phases)

    @property
    def now(self) -> int:
        return self._wheel.now

    def start(self, item: R, phase: Phase) -> None:
        """`item` enters `phase` now; its deadline replaces any earlier one."""
        now = self._wheel.now
        deadline = now + self._ticks[phase]
        old = self._phases.get(item)
        if old is not None:
            del self._members[old[0]][item]
        self._phases[item] = (phase, now, deadline)
        self._members[phase][item] = None  # the newest of its phase
        if phase is Phase.REQUEST and self._rate:
            self._wheel.put(item, 2)  # the first rate check, in its second tick
        else:
            self._wheel.put(item, deadline - now)

    def stop(self, item: R) -> None:
        """`item` left every timed phase (a request is being answered, or it is gone)."""
        state = self._phases.pop(item, None)
        if state is not None:
            del self._members[state[0]][item]
            self._wheel.cancel(item)

    def phase(self, item: R) -> Phase | None:
        state = self._phases.get(item)
        return None if state is None else state[0]

    def started(self, item: R) -> int:
        """The tick `item` entered its phase (`now` when it has none)."""
        state = self._phases.get(item)
        return self._wheel.now if state is None else state[1]

    def tick(self) -> list[tuple[R, Phase]]:
        """Advance one tick; every item whose phase is over, with the reason."""
        expired = []
        for item in self._wheel.advance():
            phase, started, deadline = self._phases[item]
            reason = self._verdict(item, phase, started, deadline)
            if reason is None:
                self._wheel.put(item, 1)  # the next rate check
            else:
                del self._phases[item]
                del self._members[phase][item]
                expired.append((item, reason))
        return expired

    def _verdict(self, item: R, phase: Phase, started: int, deadline: int) -> Phase | None:
        now = self._wheel.now
        if now >= deadline:
            return phase
        # Only a request with a rate checked is due before its deadline.
        if item.pending_bytes() < self._rate * (now - started - 1):
            return Phase.TOO_SLOW
        return None

    def oldest(self, phase: Phase) -> Iterator[R]:
        """The items in `phase` that entered it before this tick, the longest in it first
        (take what is needed before changing anything)."""
        now = self._wheel.now
        phases = self._phases
        for item in self._members[phase]:
            if phases[item][1] >= now:
                return
            yield item


class Openings(Generic[T]):
    """WebSockets between their 101 and their session: each must open in `upgrade_timeout`."""

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self._wheel: Wheel[T] = Wheel()
        self._after = ticks((limits or ConnectionLimits()).upgrade_timeout)

    def __len__(self) -> int:
        return len(self._wheel)

    def start(self, item: T) -> None:
        self._wheel.put(item, self._after)

    def done(self, item: T) -> None:
        self._wheel.cancel(item)

    def tick(self) -> list[T]:
        """Advance one tick; the items still opening past their deadline."""
        return self._wheel.advance()
