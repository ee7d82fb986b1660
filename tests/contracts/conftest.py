"""The backends each seam's contract suite runs against: one fixture per seam, one param each.

To add a backend (redis, nats, sqlite, postgres), add its name to the seam's list and a
`case` that builds it. A backend that needs a service starts it in a session fixture (from
a PyPI wheel, on a free loopback port) and stops it afterwards; a test never depends on a
service being up already, and never skips because one is missing.

Stores that keep time take the injected clock, so TTL and window tests move time by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import pytest

from ressonance.apps.base import AppStore
from ressonance.apps.memory import MemoryAppStore
from ressonance.backbone.base import Backbone
from ressonance.backbone.memory import MemoryBackbone
from ressonance.cache.base import CacheStore
from ressonance.cache.memory import MemoryCacheStore
from ressonance.presence.base import PresenceStore
from ressonance.presence.memory import MemoryPresenceStore
from ressonance.protocol.app import App
from ressonance.ratelimit.base import RateLimiter
from ressonance.ratelimit.memory import MemoryRateLimiter
from tests.fakes import FakeClock

PRESENCE_BACKENDS = ["memory"]
CACHE_BACKENDS = ["memory"]
RATELIMIT_BACKENDS = ["memory"]
BACKBONE_BACKENDS = ["memory"]
APP_BACKENDS = ["memory"]

MakeAppStore = Callable[[Iterable[App]], Awaitable[AppStore]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=PRESENCE_BACKENDS)
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    match request.param:
        case "memory":
            yield MemoryPresenceStore()
        case other:
            raise ValueError(f"no presence backend {other!r}")


@pytest.fixture(params=CACHE_BACKENDS)
async def cache(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[CacheStore]:
    match request.param:
        case "memory":
            yield MemoryCacheStore(clock)
        case other:
            raise ValueError(f"no cache backend {other!r}")


@pytest.fixture(params=RATELIMIT_BACKENDS)
async def limiter(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RateLimiter]:
    match request.param:
        case "memory":
            yield MemoryRateLimiter(clock)
        case other:
            raise ValueError(f"no rate limiter backend {other!r}")


@pytest.fixture(params=BACKBONE_BACKENDS)
async def backbone(request: pytest.FixtureRequest) -> AsyncIterator[Backbone]:
    """A backbone not yet started; closed after the test."""
    match request.param:
        case "memory":
            bus = MemoryBackbone()
        case other:
            raise ValueError(f"no backbone {other!r}")
    yield bus
    await bus.close()


@pytest.fixture(params=APP_BACKENDS)
def make_app_store(request: pytest.FixtureRequest) -> MakeAppStore:
    """`await make_app_store(apps)`: a store holding exactly `apps`."""

    async def make(apps: Iterable[App]) -> AppStore:
        match request.param:
            case "memory":
                return MemoryAppStore(apps)
            case other:
                raise ValueError(f"no app store backend {other!r}")

    return make
