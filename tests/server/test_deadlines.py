"""Phase deadlines on a timing wheel: what expires at which tick, and why."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ressonance.protocol.app import UNLIMITED
from ressonance.server.deadlines import Deadlines, Openings, Phase, ticks
from ressonance.server.limits import ConnectionLimits


@dataclass(eq=False)
class Conn:
    """A connection with so many bytes of its request received."""

    received: int = 0

    def pending_bytes(self) -> int:
        return self.received


def advance(deadlines: Deadlines[Conn], count: int) -> list[tuple[Conn, Phase]]:
    expired = []
    for _ in range(count):
        expired += deadlines.tick()
    return expired


@pytest.mark.parametrize(("seconds", "expected"), [(10.0, 11), (0.5, 2), (1.0, 2), (75.0, 76)])
def test_a_deadline_waits_at_least_its_seconds(seconds: float, expected: int) -> None:
    assert ticks(seconds) == expected


def test_a_silent_connection_expires_after_the_first_byte_timeout() -> None:
    deadlines: Deadlines[Conn] = Deadlines(ConnectionLimits(first_byte_timeout=3))
    conn = Conn()
    deadlines.start(conn, Phase.FIRST_BYTE)
    assert deadlines.phase(conn) is Phase.FIRST_BYTE
    assert advance(deadlines, ticks(3) - 1) == []
    assert deadlines.tick() == [(conn, Phase.FIRST_BYTE)]
    assert deadlines.phase(conn) is None
    assert len(deadlines) == 0


def test_a_trickle_is_closed_in_its_second_tick() -> None:
    deadlines: Deadlines[Conn] = Deadlines(ConnectionLimits(min_request_bytes_per_sec=100))
    trickle, fast = Conn(received=1), Conn(received=500)
    deadlines.start(trickle, Phase.REQUEST)
    deadlines.start(fast, Phase.REQUEST)
    assert deadlines.tick() == []
    assert deadlines.tick() == [(trickle, Phase.TOO_SLOW)]
    assert deadlines.phase(fast) is Phase.REQUEST  # 500 bytes: enough until its 7th tick
    assert advance(deadlines, 4) == []
    assert deadlines.tick() == [(fast, Phase.TOO_SLOW)]


def test_a_request_that_keeps_the_rate_still_has_its_deadline() -> None:
    limits = ConnectionLimits(request_timeout=4, min_request_bytes_per_sec=1)
    deadlines: Deadlines[Conn] = Deadlines(limits)
    conn = Conn(received=1000)
    deadlines.start(conn, Phase.REQUEST)
    assert advance(deadlines, ticks(4) - 1) == []
    assert deadlines.tick() == [(conn, Phase.REQUEST)]


def test_without_a_rate_only_the_deadline_counts() -> None:
    limits = ConnectionLimits(request_timeout=2, min_request_bytes_per_sec=UNLIMITED)
    deadlines: Deadlines[Conn] = Deadlines(limits)
    conn = Conn()
    deadlines.start(conn, Phase.REQUEST)
    assert advance(deadlines, ticks(2) - 1) == []
    assert deadlines.tick() == [(conn, Phase.REQUEST)]


def test_a_new_phase_replaces_the_deadline_and_stop_ends_it() -> None:
    deadlines: Deadlines[Conn] = Deadlines()
    conn, gone = Conn(), Conn()
    deadlines.start(conn, Phase.FIRST_BYTE)
    deadlines.start(gone, Phase.FIRST_BYTE)
    deadlines.tick()
    assert deadlines.started(conn) == 0
    deadlines.start(conn, Phase.KEEPALIVE)
    assert deadlines.started(conn) == 1
    deadlines.stop(gone)
    deadlines.stop(gone)  # twice: nothing
    assert deadlines.started(gone) == deadlines.now
    assert advance(deadlines, ticks(10) + 1) == []
    assert advance(deadlines, ticks(75)) == [(conn, Phase.KEEPALIVE)]


def test_the_oldest_of_a_phase_first_and_only_those_older_than_this_tick() -> None:
    deadlines: Deadlines[Conn] = Deadlines()
    idle, silent, later, new = Conn(), Conn(), Conn(), Conn()
    deadlines.start(idle, Phase.FIRST_BYTE)
    deadlines.start(silent, Phase.FIRST_BYTE)
    assert list(deadlines.oldest(Phase.FIRST_BYTE)) == []  # none older than this tick
    deadlines.tick()
    deadlines.start(later, Phase.FIRST_BYTE)
    deadlines.start(idle, Phase.KEEPALIVE)
    deadlines.tick()
    deadlines.start(new, Phase.FIRST_BYTE)
    assert list(deadlines.oldest(Phase.FIRST_BYTE)) == [silent, later]
    assert list(deadlines.oldest(Phase.KEEPALIVE)) == [idle]
    deadlines.stop(silent)
    assert list(deadlines.oldest(Phase.FIRST_BYTE)) == [later]
    advance(deadlines, ticks(10))
    assert list(deadlines.oldest(Phase.FIRST_BYTE)) == []


def test_openings_expire_after_the_upgrade_timeout() -> None:
    openings: Openings[str] = Openings(ConnectionLimits(upgrade_timeout=2))
    openings.start("slow")
    openings.start("quick")
    openings.done("quick")
    assert len(openings) == 1
    assert openings.tick() == []
    assert openings.tick() == []
    assert openings.tick() == ["slow"]


def test_an_opening_started_again_waits_from_then() -> None:
    openings: Openings[str] = Openings(ConnectionLimits(upgrade_timeout=1))
    openings.start("again")
    openings.start("other")
    openings.tick()
    openings.start("again")
    assert openings.tick() == ["other"]
    assert openings.tick() == ["again"]
    assert len(openings) == 0
