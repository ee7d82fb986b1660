"""The backends each seam's contract suite runs against: one fixture per seam, one param each.

App stores: the AppStore suite (test_apps.py) runs over the memory store and, through the
AppCatalog, over the file, SQLite and PostgreSQL registries; the AppRegistry suite
(test_app_store.py) over every writable registry, and its sharing tests over the ones that
several processes can open (SQLite, PostgreSQL: a real server, see tests/services.py).

To add a backend (redis, nats, sqlite, postgres), add its name to the seam's list and a
`case` that builds it. A backend that needs a service starts it in a session fixture (from
a PyPI wheel, on a free loopback port) and stops it afterwards; a test never depends on a
service being up already, and never skips because one is missing.

Stores that keep time take the injected clock, so TTL and window tests move time by hand.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from ressonance.apps import open_registry
from ressonance.apps.base import AppRecord, AppRegistry, AppStore
from ressonance.apps.catalog import AppCatalog
from ressonance.apps.file import FileAppRegistry
from ressonance.apps.memory import MemoryAppRegistry, MemoryAppStore
from ressonance.apps.settings import json_value
from ressonance.backbone.base import Backbone
from ressonance.backbone.link import Backoff
from ressonance.backbone.memory import MemoryBackbone
from ressonance.backbone.nats import NatsBackbone
from ressonance.backbone.redis import RedisBackbone
from ressonance.protocol.app import (
    BOOL_SETTINGS,
    CHOICE_SETTINGS,
    INT_SETTINGS,
    LIST_SETTINGS,
    App,
)
from ressonance.state import open_state
from ressonance.state.base import (
    CacheStore,
    HistoryStore,
    IdempotencyStore,
    PresenceStore,
    RateLimiter,
    SharedState,
    UsageStore,
    WebhookQueue,
)
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue
from tests import services
from tests.fakes import FakeClock

STATE_BACKENDS = ["memory", "redis"]  # every seam of --state, made by open_state
SHARED_STATE = ["redis"]  # more than one node can share these
BACKBONE_BACKENDS = ["memory", "redis", "nats"]
NETWORKED_BACKBONES = ["redis", "nats"]  # more than one node can share these
APP_BACKENDS = ["memory", "file", "sqlite", "postgres"]  # the last three through AppCatalog
REGISTRY_BACKENDS = ["memory", "sqlite", "postgres"]  # writable registries
SHARED_REGISTRIES = ["sqlite", "postgres"]  # more than one process can open the same one

MakeAppStore = Callable[[Iterable[App]], Awaitable[AppStore]]
OpenRegistry = Callable[[], Awaitable[AppRegistry]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeState = Callable[..., SharedState]


def state_url(request: pytest.FixtureRequest) -> str:
    match request.param:
        case "memory":
            return "memory://"
        case "redis":
            return str(request.getfixturevalue("redis_url"))
        case other:
            raise ValueError(f"no state backend {other!r}")


@pytest.fixture(params=STATE_BACKENDS)
async def make_state(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[MakeState]:
    """`make_state(node_id="a", node_ttl=10.0)`: one node's SharedState (`open_state`); the
    nodes of one test share their store and prefix (in memory every call returns the same
    state, since one process is one node). All closed after the test."""
    url, prefix = state_url(request), unique_prefix()
    made: dict[str, SharedState] = {}

    def make(node_id: str = "a", node_ttl: float = 10.0) -> SharedState:
        if request.param == "memory" and made:
            return next(iter(made.values()))
        made[node_id] = open_state(
            url, node_id=node_id, clock=clock, prefix=prefix, node_ttl=node_ttl
        )
        return made[node_id]

    yield make
    for state in made.values():
        await state.close()


@pytest.fixture
def state(make_state: MakeState) -> SharedState:
    """One node's shared state, on every backend."""
    return make_state()


@pytest.fixture
def presence(state: SharedState) -> PresenceStore:
    return state.presence


@pytest.fixture
def cache(state: SharedState) -> CacheStore:
    return state.cache


@pytest.fixture
def limiter(state: SharedState) -> RateLimiter:
    return state.limiter


@pytest.fixture
def usage(state: SharedState) -> UsageStore:
    return state.usage


@pytest.fixture(params=BACKBONE_BACKENDS)
async def backbone(request: pytest.FixtureRequest) -> AsyncIterator[Backbone]:
    """A backbone not yet started; closed after the test."""
    match request.param:
        case "memory":
            bus = MemoryBackbone()
        case "redis" | "nats":
            url = request.getfixturevalue(f"{request.param}_url")
            bus = networked_backbone(request.param, url, unique_prefix())
        case other:
            raise ValueError(f"no backbone {other!r}")
    yield bus
    await bus.close()


# Reconnect quickly in tests; the defaults (0.1 s doubling to 5 s) suit production.
TEST_BACKOFF = Backoff(base=0.05, cap=0.5)

MakeBackbone = Callable[..., Backbone]


def unique_prefix() -> str:
    """Each test gets its own channels/subjects on a shared server."""
    return f"test-{uuid.uuid4().hex[:12]}"


def networked_backbone(kind: str, url: str, prefix: str, **options: float) -> Backbone:
    match kind:
        case "redis":
            return RedisBackbone(url, prefix=prefix, backoff=TEST_BACKOFF, **options)
        case "nats":
            return NatsBackbone(url, prefix=prefix, backoff=TEST_BACKOFF, **options)
        case other:
            raise ValueError(f"no networked backbone {other!r}")


@pytest.fixture(params=NETWORKED_BACKBONES)
async def make_backbone(request: pytest.FixtureRequest) -> AsyncIterator[MakeBackbone]:
    """`make_backbone()`: one more node's backbone (not started) on the same shared server
    and prefix as the others of this test; all closed after the test."""
    url = request.getfixturevalue(f"{request.param}_url")
    prefix = unique_prefix()
    made: list[Backbone] = []

    def make(**options: float) -> Backbone:
        made.append(networked_backbone(request.param, url, prefix, **options))
        return made[-1]

    yield make
    for bus in made:
        await bus.close()


@dataclass(frozen=True)
class Restartable:
    """A server of this test's own, to stop, start, pause and resume, and backbones on it."""

    server: services.ServerProcess
    make: MakeBackbone


@pytest.fixture(params=NETWORKED_BACKBONES)
async def restartable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Restartable]:
    """Always a private server (even with REDIS_URL/NATS_URL set): tests stop it."""
    server = services.valkey(tmp_path) if request.param == "redis" else services.nats(tmp_path)
    prefix = unique_prefix()
    made: list[Backbone] = []

    def make(**options: float) -> Backbone:
        made.append(networked_backbone(request.param, server.url, prefix, **options))
        return made[-1]

    with services.running(server):
        yield Restartable(server, make)
        for bus in made:
            await bus.close()


@pytest.fixture(params=APP_BACKENDS)
async def make_app_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MakeAppStore]:
    """`await make_app_store(apps)`: a store holding exactly `apps`.

    Besides the fixed MemoryAppStore, each registry is read through an AppCatalog, as a
    node reads it: the apps go in as records (their settings as overrides) and must come
    back out resolved, equal to what went in.
    """
    opened: list[AppRegistry] = []

    async def make(apps: Iterable[App]) -> AppStore:
        apps = list(apps)
        match request.param:
            case "memory":
                return MemoryAppStore(apps)
            case "file":
                path = tmp_path / "apps.toml"
                path.write_text(apps_toml([record_of(app) for app in apps]))
                registry: AppRegistry = FileAppRegistry(path)
            case "sqlite" | "postgres":
                registry = await open_registry(await fresh_registry_url(request))
                for app in apps:
                    await registry.create(record_of(app))
            case other:
                raise ValueError(f"no app store backend {other!r}")
        opened.append(registry)
        catalog = AppCatalog(registry)
        await catalog.refresh()
        return catalog

    yield make
    for registry in opened:
        await registry.close()


async def fresh_registry_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty registry of the param's kind, this test's own."""
    match request.param:
        case "sqlite":
            directory: Path = request.getfixturevalue("tmp_path")
            return f"sqlite:///{directory / f'apps-{uuid.uuid4().hex[:8]}.db'}"
        case "postgres":
            return await fresh_postgres_schema(request.getfixturevalue("postgres_url"))
        case other:
            raise ValueError(f"no shared registry {other!r}")


async def fresh_postgres_schema(base_url: str) -> str:
    """`base_url` with a new, empty schema first on its search_path (asyncpg passes unknown
    URL parameters to the server as settings), so each test has tables of its own."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(base_url)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
    finally:
        await connection.close()
    return f"{base_url}{'&' if '?' in base_url else '?'}search_path={schema}"


@pytest.fixture(params=REGISTRY_BACKENDS)
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[AppRegistry]:
    """An empty, writable registry; closed after the test."""
    if request.param == "memory":
        opened: AppRegistry = MemoryAppRegistry()
    else:
        opened = await open_registry(await fresh_registry_url(request))
    yield opened
    await opened.close()


@pytest.fixture(params=SHARED_REGISTRIES)
async def open_shared(request: pytest.FixtureRequest) -> AsyncIterator[OpenRegistry]:
    """`await open_shared()`: one more registry on the same (new) database; all closed after."""
    url = await fresh_registry_url(request)
    opened: list[AppRegistry] = []

    async def open_one() -> AppRegistry:
        opened.append(await open_registry(url))
        return opened[-1]

    yield open_one
    for each in opened:
        await each.close()


_RECORD_FIELDS = ("id", "key", "secret", "name", "enabled", "plan")
_DEFAULTS = App(id="", key="", secret="")


def record_of(app: App) -> AppRecord:
    """`app` as a registry keeps it: every setting that differs from the default."""
    names = (*BOOL_SETTINGS, *INT_SETTINGS, *CHOICE_SETTINGS, *LIST_SETTINGS, "webhooks")
    settings: dict[str, object] = {}
    for name in names:
        if name in _RECORD_FIELDS:
            continue
        value = getattr(app, name)
        if value != getattr(_DEFAULTS, name):
            settings[name] = json_value(value)
    return AppRecord(
        id=app.id,
        key=app.key,
        secret=app.secret,
        name=app.name,
        enabled=app.enabled,
        plan=app.plan,
        settings=settings,
    )


def apps_toml(records: Iterable[AppRecord]) -> str:
    """`[[apps]]` tables for `records` (strings, integers, booleans, lists and inline tables)."""
    lines: list[str] = []
    for record in records:
        lines.append("[[apps]]")
        values = {f: getattr(record, f) for f in _RECORD_FIELDS} | dict(record.settings)
        lines += [f"{name} = {_toml_value(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        pairs = (f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a basic TOML string is a JSON string


@pytest.fixture
def history(state: SharedState) -> HistoryStore:
    return state.history


@pytest.fixture
def idempotency(state: SharedState) -> IdempotencyStore:
    return state.idempotency


# --- the webhook queue ------------------------------------------------------------------------

QUEUE_BACKENDS = ["sqlite", "redis"]  # a single node's file, and the cluster's streams
LEASE_TTL = 0.3


@dataclass
class Queues:
    """`make(node_id)`: one more node's queue on the same store (opened); `expire()` lets
    every lease end (the SQLite queue follows the injected clock, Redis its own)."""

    make: Callable[..., Awaitable[WebhookQueue]]
    expire: Callable[[], Awaitable[None]]
    kind: str


@pytest.fixture(params=QUEUE_BACKENDS)
async def queues(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Queues]:
    made: list[WebhookQueue] = []
    prefix = unique_prefix()
    states: list[SharedState] = []

    async def make(node_id: str = "a", dead_letter_limit: int = 100_000) -> WebhookQueue:
        queue: WebhookQueue
        if request.param == "sqlite":
            queue = SqliteWebhookQueue(
                tmp_path / "state" / "webhooks.db",
                node_id=node_id,
                clock=clock,
                lease_ttl=LEASE_TTL,
                dead_letter_limit=dead_letter_limit,
            )
        else:
            url = str(request.getfixturevalue("redis_url"))
            state = open_state(url, node_id=node_id, clock=clock, prefix=prefix, node_ttl=LEASE_TTL)
            states.append(state)
            queue = state.webhooks
            queue.dead_letter_limit = dead_letter_limit  # type: ignore[attr-defined]
        await queue.open()
        made.append(queue)
        return queue

    async def expire() -> None:
        clock.advance(LEASE_TTL * 2)
        if request.param == "redis":
            await asyncio.sleep(LEASE_TTL * 2)

    yield Queues(make, expire, request.param)
    for queue in made:
        await queue.close()
    for state in states:
        await state.close()
