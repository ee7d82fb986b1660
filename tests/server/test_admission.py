"""Admission control: node saturation, connections per address and per app (issue §4).

Each limit is hit on purpose; a refusal is close code 4100 (pusher-js retries after 1 s) with
a reason naming the setting, counted in metrics by that setting.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ressonance.apps.memory import MemoryAppStore
from ressonance.backbone.memory import MemoryBackbone
from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.errors import ErrorCode
from ressonance.server.admission import Admission, AdmissionLimits, rate_key
from ressonance.server.node import Node
from ressonance.server.service import gate
from ressonance.state.base import Decision, RateLimiter
from ressonance.state.memory import MemoryCacheStore, MemoryPresenceStore, MemoryRateLimiter
from tests.fakes import FakeClock
from tests.server.clients import Client
from tests.server.conftest import APP, MakeNode
from tests.server.test_metrics import value


def admission(node: Node, **limits: object) -> Admission:
    return gate(node, AdmissionLimits(**limits)).admission  # type: ignore[arg-type]


def strict(node: Node, **limits: object) -> Admission:
    """Admission whose per-address rate applies at all times (`per_ip_rate_when = "always"`)."""
    return admission(node, per_ip_rate_when="always", **limits)


def refused(refusal: tuple[ErrorCode, str] | None, setting: str) -> None:
    assert refusal is not None, "expected a refusal"
    code, reason = refusal
    assert code == ErrorCode.OVER_CAPACITY
    assert setting in reason


async def test_defaults_admit_a_normal_stream_of_connections(node: Node) -> None:
    gate = admission(node)
    assert gate.limits == AdmissionLimits(60, UNLIMITED, 2000, (), "under_pressure")

    for index in range(60):
        assert await gate.admit(APP, f"198.51.100.{index}") is None
        assert await gate.admit(APP, "203.0.113.7") is None


# --- the per-address rate engages under pressure (docs/topics/security.md) -------------------


async def test_a_default_node_with_room_admits_any_burst_from_one_address(node: Node) -> None:
    gate = admission(node)

    refusals = [await gate.admit(APP, "127.0.0.1") for _ in range(1000)]

    assert refusals == [None] * 1000
    assert not gate.under_pressure()


UNDER_PRESSURE_REASON = (
    "Too many connections from 127.0.0.2: more than 60 per second while the server is under "
    "pressure; retry later (max_connections_per_ip_per_sec)"
)


async def test_a_lagging_node_refuses_the_flooding_address_and_admits_others(
    node: Node, clock: FakeClock
) -> None:
    gate = admission(node)
    node.metrics.loop_lag = 0.6  # over a quarter of max_loop_lag_ms (2000), under all of it
    for _ in range(60):
        assert await gate.admit(APP, "127.0.0.2") is None

    refusal = await gate.admit(APP, "127.0.0.2")

    assert refusal == (ErrorCode.OVER_CAPACITY, UNDER_PRESSURE_REASON)
    assert await gate.admit(APP, "127.0.0.3") is None  # a quiet address still gets in
    assert value(node, "connections_throttled_total", limit="max_connections_per_ip_per_sec") == 1
    clock.advance(1.0)
    assert await gate.admit(APP, "127.0.0.2") is None  # a new second, a new count


async def test_an_address_that_opened_many_is_refused_as_soon_as_pressure_comes(
    node: Node,
) -> None:
    gate = admission(node)
    for _ in range(500):  # a healthy burst: the node has room
        assert await gate.admit(APP, "127.0.0.2") is None

    node.metrics.loop_lag = 0.6
    refusal = await gate.admit(APP, "127.0.0.2")

    assert refusal == (ErrorCode.OVER_CAPACITY, UNDER_PRESSURE_REASON)
    assert await gate.admit(APP, "127.0.0.3") is None


async def test_a_node_near_its_connection_limit_is_under_pressure(node: Node) -> None:
    gate = admission(node, max_node_connections=8, max_connections_per_ip_per_sec=2)
    for _ in range(5):
        Client.connect(node, APP)
    assert not gate.under_pressure()
    Client.connect(node, APP)  # 6 of 8: three quarters

    assert gate.under_pressure()
    assert await gate.admit(APP, "127.0.0.2") is None
    assert await gate.admit(APP, "127.0.0.2") is None
    refused(await gate.admit(APP, "127.0.0.2"), "under pressure")


async def test_a_node_near_its_descriptor_capacity_is_under_pressure(node: Node) -> None:
    gate = admission(node)
    node.metrics.connection_capacity = 1000
    node.metrics.open_connections = 749
    assert not gate.under_pressure()

    node.metrics.open_connections = 750

    assert gate.under_pressure()


@pytest.mark.parametrize(
    ("max_loop_lag_ms", "lag", "pressure"),
    [(2000, 0.5, False), (2000, 0.501, True), (400, 0.101, True), (UNLIMITED, 0.501, True)],
)
async def test_loop_lag_over_a_quarter_of_the_limit_is_pressure(
    node: Node, max_loop_lag_ms: int, lag: float, pressure: bool
) -> None:
    gate = admission(node, max_loop_lag_ms=max_loop_lag_ms)
    node.metrics.loop_lag = lag

    assert gate.under_pressure() is pressure


async def test_per_ip_limit_refuses_one_address_and_not_another(
    node: Node, clock: FakeClock
) -> None:
    gate = strict(node, max_connections_per_ip_per_sec=3)
    for _ in range(3):
        assert await gate.admit(APP, "127.0.0.2") is None

    refusal = await gate.admit(APP, "127.0.0.2")

    assert refusal == (
        ErrorCode.OVER_CAPACITY,
        "Too many connections from 127.0.0.2: more than 3 per second; retry later "
        "(max_connections_per_ip_per_sec)",
    )
    assert await gate.admit(APP, "127.0.0.3") is None
    assert value(node, "connections_throttled_total", limit="max_connections_per_ip_per_sec") == 1
    clock.advance(1.0)  # the next second: a new window
    assert await gate.admit(APP, "127.0.0.2") is None


async def test_per_ip_limit_counts_the_forwarded_address_behind_a_trusted_proxy(
    node: Node,
) -> None:
    gate = strict(node, max_connections_per_ip_per_sec=1, trusted_proxies=("127.0.0.1",))

    assert await gate.admit(APP, "127.0.0.1", ["198.51.100.1"]) is None
    assert await gate.admit(APP, "127.0.0.1", ["198.51.100.2"]) is None  # another client
    refused(await gate.admit(APP, "127.0.0.1", ["198.51.100.1"]), "198.51.100.1")


async def test_a_spoofed_header_from_an_untrusted_peer_does_not_dodge_the_limit(
    node: Node,
) -> None:
    gate = strict(node, max_connections_per_ip_per_sec=1, trusted_proxies=("127.0.0.1",))
    assert await gate.admit(APP, "203.0.113.7", ["198.51.100.1"]) is None

    refusal = await gate.admit(APP, "203.0.113.7", ["198.51.100.2"])

    refused(refusal, "max_connections_per_ip_per_sec")
    assert refusal is not None
    assert "203.0.113.7" in refusal[1]


async def test_ipv6_addresses_count_per_64(node: Node) -> None:
    gate = strict(node, max_connections_per_ip_per_sec=2)
    assert await gate.admit(APP, "2001:db8:0:1::1") is None
    assert await gate.admit(APP, "2001:db8:0:1::2") is None

    refused(await gate.admit(APP, "2001:db8:0:1:ffff::9"), "max_connections_per_ip_per_sec")
    assert await gate.admit(APP, "2001:db8:0:2::1") is None  # another /64
    assert rate_key("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    assert rate_key("unknown") == "unknown"


async def test_per_app_limit(make_node: MakeNode, clock: FakeClock) -> None:
    limited = replace(APP, max_connections_per_sec=2)
    other = replace(APP, id="2", key="other-key")
    node = await make_node(limited, other)
    gate = admission(node, max_connections_per_ip_per_sec=UNLIMITED)
    assert await gate.admit(limited, "198.51.100.1") is None
    assert await gate.admit(limited, "198.51.100.2") is None

    refusal = await gate.admit(limited, "198.51.100.3")

    assert refusal == (
        ErrorCode.OVER_CAPACITY,
        "Too many new connections to this app: more than 2 per second; retry later "
        "(max_connections_per_sec)",
    )
    assert await gate.admit(other, "198.51.100.3") is None  # other apps are not affected
    assert value(node, "connections_throttled_total", limit="max_connections_per_sec") == 1
    clock.advance(1.0)
    assert await gate.admit(limited, "198.51.100.3") is None


def cluster_node(app: App, clock: FakeClock, shared: RateLimiter) -> Node:
    """A node as `build_node` makes one for a cluster: its own per-connection limiter, and
    the app-wide limits in `shared` (Redis in production)."""
    return Node(
        apps=MemoryAppStore([app]),
        backbone=MemoryBackbone(),
        presence=MemoryPresenceStore(),
        cache=MemoryCacheStore(clock),
        limiter=MemoryRateLimiter(clock),
        clock=clock,
        shared_limiter=shared,
    )


async def test_the_per_app_limit_counts_the_connections_of_every_node(clock: FakeClock) -> None:
    limited = replace(APP, max_connections_per_sec=2)
    shared = MemoryRateLimiter(clock)  # one store for the whole cluster
    first, second = (
        admission(cluster_node(limited, clock, shared), max_connections_per_ip_per_sec=UNLIMITED)
        for _ in range(2)
    )
    assert await first.admit(limited, "198.51.100.1") is None
    assert await second.admit(limited, "198.51.100.2") is None

    refused(await second.admit(limited, "198.51.100.3"), "max_connections_per_sec")
    refused(await first.admit(limited, "198.51.100.4"), "max_connections_per_sec")


class DownLimiter(MemoryRateLimiter):
    """A shared rate limiter whose store cannot be reached."""

    async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
        raise ConnectionError("store down")


async def test_a_per_app_limit_that_cannot_be_checked_refuses_with_4100(
    clock: FakeClock,
) -> None:
    limited = replace(APP, max_connections_per_sec=2)
    unlimited = replace(APP, id="2", key="other-key")
    node = cluster_node(limited, clock, DownLimiter(clock))
    gate = admission(node, max_connections_per_ip_per_sec=UNLIMITED)

    assert await gate.admit(limited, "198.51.100.1") == (
        ErrorCode.OVER_CAPACITY,
        "The app's connection rate cannot be checked now; retry later (max_connections_per_sec)",
    )
    assert await gate.admit(unlimited, "198.51.100.1") is None  # nothing to check: served
    assert value(node, "connections_throttled_total", limit="max_connections_per_sec") == 1


async def test_a_full_node_refuses_new_connections(node: Node) -> None:
    gate = admission(node, max_node_connections=2)
    Client.connect(node, APP)
    assert await gate.admit(APP, "198.51.100.1") is None
    Client.connect(node, APP)

    refusal = await gate.admit(APP, "198.51.100.1")

    assert refusal == (
        ErrorCode.OVER_CAPACITY,
        "Server over capacity: this node holds its maximum of 2 connections; retry later "
        "(max_node_connections)",
    )
    assert value(node, "connections_throttled_total", limit="max_node_connections") == 1


async def test_a_lagging_event_loop_refuses_new_connections(node: Node) -> None:
    gate = admission(node, max_loop_lag_ms=500)
    node.metrics.loop_lag = 0.5
    assert await gate.admit(APP, "198.51.100.1") is None  # at the limit: still fine

    node.metrics.loop_lag = 0.75
    assert await gate.admit(APP, "198.51.100.1") == (
        ErrorCode.OVER_CAPACITY,
        "Server over capacity: event loop lag 750 ms is over 500 ms; retry later (max_loop_lag_ms)",
    )
    node.metrics.loop_lag = 0.01  # the loop caught up
    assert await gate.admit(APP, "198.51.100.1") is None


async def test_saturation_is_checked_first_and_spends_no_rate(node: Node) -> None:
    gate = admission(node, max_loop_lag_ms=100, max_connections_per_ip_per_sec=1)
    node.metrics.loop_lag = 1.0
    for _ in range(3):
        refused(await gate.admit(APP, "198.51.100.1"), "max_loop_lag_ms")

    node.metrics.loop_lag = 0.0
    assert await gate.admit(APP, "198.51.100.1") is None


@pytest.mark.parametrize(
    "limits",
    [
        {
            "max_node_connections": UNLIMITED,
            "max_loop_lag_ms": UNLIMITED,
            "max_connections_per_ip_per_sec": UNLIMITED,
        },
        {"max_connections_per_ip_per_sec": UNLIMITED},
    ],
)
async def test_unlimited_settings_never_refuse(node: Node, limits: dict[str, int]) -> None:
    gate = admission(node, **limits)
    node.metrics.loop_lag = 60.0 if "max_loop_lag_ms" in limits else 0.0
    for _ in range(200):
        assert await gate.admit(APP, "198.51.100.1") is None
