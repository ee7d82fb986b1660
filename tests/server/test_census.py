"""The census: connections counted per address and against the descriptor capacity."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ressonance.protocol.app import UNLIMITED
from ressonance.server.census import (
    LOG_EVERY_TICKS,
    SHED_SCAN,
    Census,
    DescriptorBudget,
    address_of,
    descriptor_budget,
    descriptors_in_use,
)
from ressonance.server.deadlines import Deadlines, Phase, ticks
from ressonance.server.limits import ConnectionLimits


class Transport:
    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.aborted = False
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.aborted or self.closed


class Door:
    def __init__(self, host: str = "10.0.0.1") -> None:
        self.transport = Transport((host, 40000))
        self.probes_only = False
        self.busy = False

    def pending_bytes(self) -> int:
        return 0


class Harness:
    def __init__(self, capacity: int | None = None, **limits: Any) -> None:
        self.deadlines: Deadlines[Door] = Deadlines(ConnectionLimits(**limits))
        self.websockets = 0
        self.dropped: list[str] = []
        self.census: Census[Door] = Census(
            self.deadlines,
            websockets=lambda: self.websockets,
            capacity=capacity,
            dropped=self.dropped.append,
        )

    def arrive(self, host: str = "10.0.0.1") -> Door:
        door = Door(host)
        self.census.arrive(door)
        return door

    def tick(self) -> None:
        self.deadlines.tick()
        self.census.tick()


def test_connections_are_counted_from_their_arrival_until_they_leave() -> None:
    harness = Harness()
    first, second = harness.arrive(), harness.arrive("10.0.0.2")
    harness.websockets = 5
    assert harness.census.open_connections() == 7
    assert harness.census.count("10.0.0.1") == 1
    assert harness.deadlines.phase(first) is Phase.FIRST_BYTE
    harness.census.leave(first)
    harness.census.leave(first)  # twice: nothing
    assert harness.census.count("10.0.0.1") == 0
    assert harness.deadlines.phase(first) is None
    assert harness.census.pending == 1
    assert not second.transport.aborted


def test_past_the_per_address_limit_the_oldest_idle_connection_makes_room() -> None:
    harness = Harness(max_pending_connections_per_ip=2)
    oldest, busy = harness.arrive(), harness.arrive()
    assert not harness.census.arrive(Door())  # all arrived in this tick: the new one goes
    assert harness.dropped == ["per_address_limit"]
    harness.tick()
    oldest.busy = True  # a request being answered is never cut
    newest = harness.arrive()
    assert busy.transport.aborted
    assert not oldest.transport.aborted
    assert harness.dropped == ["per_address_limit", "shed_per_address"]
    assert harness.census.count("10.0.0.1") == 2
    assert not harness.census.arrive(Door())  # the rest is busy or new
    assert not newest.transport.aborted
    assert harness.census.arrive(Door("10.0.0.2"))  # other addresses are not concerned


def test_ipv6_addresses_count_per_64_and_trusted_proxies_are_not_limited() -> None:
    harness = Harness(max_pending_connections_per_ip=1, trusted_proxies=("10.9.0.0/16",))
    assert harness.census.arrive(Door("2001:db8:1:2::1"))
    assert not harness.census.arrive(Door("2001:db8:1:2::ffff"))  # the same /64
    assert harness.census.arrive(Door("2001:db8:1:3::1"))
    for _ in range(3):
        assert harness.census.arrive(Door("10.9.1.1"))


def test_no_per_address_limit() -> None:
    harness = Harness(max_pending_connections_per_ip=UNLIMITED)
    for _ in range(3000):
        assert harness.census.arrive(Door())


def test_past_the_capacity_the_longest_silent_connection_is_shed_first() -> None:
    harness = Harness(capacity=4)
    idle, sending, busy = harness.arrive("10.0.0.1"), Door(), Door()
    harness.deadlines.start(idle, Phase.KEEPALIVE)
    for door in (sending, busy):
        harness.census.arrive(door)
        harness.deadlines.start(door, Phase.REQUEST)
    busy.busy = True
    silent = harness.arrive("10.0.0.2")
    harness.tick()
    harness.arrive()
    assert silent.transport.aborted  # silent goes before one sending its request
    assert harness.dropped == ["shed_for_capacity"]
    harness.arrive()
    assert sending.transport.aborted
    assert not busy.transport.aborted  # being answered
    harness.arrive()
    assert idle.transport.aborted
    assert harness.census.open_connections() == 4


def test_with_nothing_to_shed_new_connections_get_the_probe_reserve_then_are_closed() -> None:
    harness = Harness(capacity=10, reserved_descriptors=4)
    harness.websockets = 10  # sessions are never shed
    probe = harness.arrive()
    assert probe.probes_only
    assert not probe.transport.aborted
    second = harness.arrive()
    assert second.probes_only
    third = harness.arrive()  # half the reserve is lent to probes: 2
    assert third.transport.aborted
    assert harness.dropped == ["descriptor_reserve"]


def test_only_a_few_of_the_oldest_are_looked_at_for_one_to_shed() -> None:
    harness = Harness(capacity=SHED_SCAN + 1, max_pending_connections_per_ip=SHED_SCAN + 1)
    busy = [harness.arrive() for _ in range(SHED_SCAN + 1)]
    for door in busy:
        door.busy = True
    harness.tick()
    assert not harness.census.arrive(Door())  # per address: nothing idle among the oldest
    assert harness.dropped == ["per_address_limit"]
    probe = harness.arrive("10.0.0.2")  # per node: nothing to shed either
    assert probe.probes_only


def test_a_connection_the_web_library_took_counts_until_it_closes() -> None:
    harness = Harness()
    door = harness.arrive()
    harness.census.hand_on(door)
    harness.census.hand_on(door)  # already handed on: nothing
    assert harness.census.count("10.0.0.1") == 1
    assert harness.deadlines.phase(door) is None  # the web library's keep-alive applies
    harness.tick()
    assert harness.census.pending == 1
    door.transport.close()
    harness.tick()
    assert harness.census.pending == 0
    upgraded = harness.arrive()
    harness.census.hand_on(upgraded)
    harness.census.upgraded(upgraded.transport)  # a WebSocket now: counted there
    harness.census.upgraded(upgraded.transport)
    assert harness.census.pending == 0


def test_a_probe_only_connection_is_closed_once_a_request_had_its_time() -> None:
    harness = Harness(capacity=0, request_timeout=2)
    probe = harness.arrive()
    assert probe.probes_only
    harness.census.hand_on(probe)
    for _ in range(ticks(2) - 1):
        harness.tick()
    assert not probe.transport.closed
    harness.tick()
    assert probe.transport.closed


def test_sheds_are_logged_at_most_once_every_few_ticks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ressonance.server.census")
    harness = Harness(max_pending_connections_per_ip=1)
    harness.arrive()
    for _ in range(LOG_EVERY_TICKS + 1):
        harness.arrive()
        harness.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the first at once, then one summing up the next ten ticks
    assert lines[0] == "event=connections_shed per_address_limit=1 open=1 capacity=None"
    assert lines[1] == "event=connections_shed shed_per_address=10 open=1 capacity=None"


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        (("192.0.2.1", 5000), "192.0.2.1"),
        (("2001:db8::1", 5000, 0, 0), "2001:db8::/64"),
        (None, "unknown"),
        ("/run/socket", "unknown"),
    ],
)
def test_the_address_a_connection_counts_for(peer: Any, address: str) -> None:
    assert address_of(Transport(peer)) == address  # type: ignore[arg-type]


def test_the_capacity_leaves_the_reserve_but_never_less_than_half() -> None:
    assert DescriptorBudget(1024, 24, 128).capacity == 872
    assert DescriptorBudget(1024, 24, 900).capacity == 500
    assert DescriptorBudget(None, 0, 128).capacity is None


def test_the_budget_is_read_from_the_process() -> None:
    budget = descriptor_budget(64)
    assert budget.limit is not None
    assert budget.limit > budget.in_use > 0
    assert descriptors_in_use() > 0
