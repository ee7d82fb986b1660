"""ConnectionCounter contract (connections/base.py): concurrent connections per app.

Shared backends add what a cluster needs: nodes share one limit atomically, and a node that
stops heartbeating stops counting once its registration expires.
"""

from __future__ import annotations

import asyncio

import pytest

from ressonance.state.base import ConnectionCounter
from tests.contracts.conftest import MakeCounter


@pytest.fixture
def counter(make_counter: MakeCounter) -> ConnectionCounter:
    return make_counter()


async def test_connections_are_admitted_up_to_the_limit(counter: ConnectionCounter) -> None:
    totals = [await counter.acquire("1", 3) for _ in range(4)]

    assert totals == [1, 2, 3, None]
    assert await counter.count("1") == 3


async def test_a_closed_connection_frees_its_slot(counter: ConnectionCounter) -> None:
    for _ in range(2):
        await counter.acquire("1", 2)

    await counter.release("1")

    assert await counter.count("1") == 1
    assert await counter.acquire("1", 2) == 2


async def test_no_limit_admits_every_connection(counter: ConnectionCounter) -> None:
    totals = [await counter.acquire("1", -1) for _ in range(5)]

    assert totals == [1, 2, 3, 4, 5]


async def test_apps_are_counted_separately(counter: ConnectionCounter) -> None:
    await counter.acquire("1", 1)

    assert await counter.acquire("1", 1) is None
    assert await counter.acquire("2", 1) == 1
    assert await counter.count("3") == 0


async def test_a_count_never_goes_below_zero(counter: ConnectionCounter) -> None:
    await counter.acquire("1", -1)
    for _ in range(3):
        await counter.release("1")

    assert await counter.count("1") == 0
    assert await counter.acquire("1", 1) == 1


async def test_restore_sets_this_nodes_counts(counter: ConnectionCounter) -> None:
    await counter.acquire("1", -1)
    await counter.acquire("2", -1)

    await counter.restore({"1": 4, "3": 2})

    assert [await counter.count(app) for app in ("1", "2", "3")] == [4, 0, 2]


# --- shared backends: several nodes -------------------------------------------------------

SHARED = pytest.mark.parametrize("make_counter", ["redis"], indirect=True)


@SHARED
async def test_nodes_share_an_apps_limit(make_counter: MakeCounter) -> None:
    a, b = make_counter("a"), make_counter("b")
    await a.heartbeat()
    await b.heartbeat()

    assert await a.acquire("1", 3) == 1
    assert await b.acquire("1", 3) == 2
    assert await a.acquire("1", 3) == 3
    assert await b.acquire("1", 3) is None
    await a.release("1")
    assert await b.acquire("1", 3) == 3
    assert await a.count("1") == await b.count("1") == 3


@SHARED
async def test_nodes_admitting_at_once_never_pass_the_limit(make_counter: MakeCounter) -> None:
    nodes = [make_counter(f"n{i}") for i in range(4)]
    for node in nodes:
        await node.heartbeat()

    totals = await asyncio.gather(*(nodes[i % 4].acquire("1", 10) for i in range(60)))

    assert sorted(t for t in totals if t is not None) == list(range(1, 11))
    assert await nodes[0].count("1") == 10


@SHARED
async def test_a_silent_nodes_connections_stop_counting(make_counter: MakeCounter) -> None:
    alive, dying = make_counter("alive", 5.0), make_counter("dying", 0.2)
    await alive.heartbeat()
    await dying.heartbeat()
    for _ in range(3):
        await dying.acquire("1", 4)
    assert await alive.acquire("1", 4) == 4
    assert await alive.acquire("1", 4) is None

    await asyncio.sleep(0.4)  # the dying node's registration expires

    assert await alive.count("1") == 1
    assert await alive.acquire("1", 4) == 2


@SHARED
async def test_heartbeat_reports_a_lapse(make_counter: MakeCounter) -> None:
    node = make_counter("a", 0.2)

    assert await node.heartbeat() is False  # first beat
    assert await node.heartbeat() is True
    await asyncio.sleep(0.4)
    assert await node.heartbeat() is False  # expired meanwhile


@SHARED
async def test_a_node_counts_before_its_first_heartbeat(make_counter: MakeCounter) -> None:
    starting, other = make_counter("starting"), make_counter("other")
    await other.heartbeat()

    assert await starting.acquire("1", 5) == 1
    assert await starting.acquire("1", 5) == 2  # its own field is never dropped by itself
    await starting.heartbeat()
    await starting.restore({"1": 2})
    assert await other.count("1") == 2
