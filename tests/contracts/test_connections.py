"""ConnectionCounter contract (state/base.py): concurrent connections per app.

Shared backends add what a cluster needs: nodes share one limit atomically. A node whose
lease ends stops counting: that is the membership's contract (test_membership.py).
"""

from __future__ import annotations

import asyncio

import pytest

from ressonance.state.base import ConnectionCounter, SharedState
from tests.contracts.conftest import SHARED_STATE, MakeState


@pytest.fixture
def counter(state: SharedState) -> ConnectionCounter:
    return state.connections


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

SHARED = pytest.mark.parametrize("make_state", SHARED_STATE, indirect=True)


@SHARED
async def test_nodes_share_an_apps_limit(make_state: MakeState) -> None:
    a, b = make_state("a"), make_state("b")
    await a.membership.heartbeat()
    await b.membership.heartbeat()

    assert await a.connections.acquire("1", 3) == 1
    assert await b.connections.acquire("1", 3) == 2
    assert await a.connections.acquire("1", 3) == 3
    assert await b.connections.acquire("1", 3) is None
    await a.connections.release("1")
    assert await b.connections.acquire("1", 3) == 3
    assert await a.connections.count("1") == await b.connections.count("1") == 3


@SHARED
async def test_nodes_admitting_at_once_never_pass_the_limit(make_state: MakeState) -> None:
    nodes = [make_state(f"n{i}") for i in range(4)]
    for node in nodes:
        await node.membership.heartbeat()

    totals = await asyncio.gather(*(nodes[i % 4].connections.acquire("1", 10) for i in range(60)))

    assert sorted(t for t in totals if t is not None) == list(range(1, 11))
    assert await nodes[0].connections.count("1") == 10
