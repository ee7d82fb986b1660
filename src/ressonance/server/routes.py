"""The node's one routing table: every path its port answers, resolved once per request.

A request's path is resolved once, where the request is first read (the front door for what
it answers itself, the transport for the rest), into a `Route`: the endpoint and the values
of its parameters. The front door, the transport, the HTTP API and the admin API dispatch on
that route, and the HTTP API's metric label is the endpoint's name, so no path is parsed
twice.

Rules:
1. A template is segments between "/": `{name}` matches one non-empty segment and any other
   segment only itself. Paths are the decoded ones (the web library's `request.path`; the
   front door's paths need no decoding).
2. No two templates may leave a path a choice between a literal segment and a parameter, so
   one walk down the table decides (checked when the table is built).
3. A path that no endpoint has still belongs to an area by its start: `/apps/` and `/users/`
   to the HTTP API, `/admin/` to the admin API, which answer it with their own 404; any other
   is `Area.NOWHERE`.
4. An endpoint's methods are the ones it answers; its name labels metrics, so names are a
   fixed set, never a raw path.
5. Data and a pure `resolve`: no web library, nothing else of the server (import-linter).
6. Resolving is pure, and the same few paths come again and again (a client publishes to its
   app's endpoints), so the table remembers the routes of up to `MAX_REMEMBERED_PATHS` paths
   of at most `MAX_REMEMBERED_PATH` characters, and forgets them all when full: junk paths
   cost memory only within that bound. A remembered route is shared: never change it.

`Route` is a named tuple rather than a frozen dataclass: it is cheaper to build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, NamedTuple

MAX_REMEMBERED_PATHS: Final = 1024
MAX_REMEMBERED_PATH: Final = 200


class Area(Enum):
    """Who answers a path."""

    WEBSOCKET = "websocket"  # the Pusher client protocol (reference §1)
    HTTP_API = "http_api"  # the Pusher HTTP API (§5)
    ADMIN = "admin"  # the admin API
    NODE = "node"  # health, readiness, metrics
    NOWHERE = "nowhere"  # 404, or 4005 for a WebSocket upgrade


@dataclass(frozen=True, slots=True, eq=False)
class Endpoint:
    """One entry of the table; each is a constant, equal only to itself (hashed by identity)."""

    area: Area
    name: str
    template: str
    methods: tuple[str, ...]


class Route(NamedTuple):
    """A resolved path: its area, its endpoint (None if the area has none there), params."""

    area: Area
    endpoint: Endpoint | None
    params: Mapping[str, str]


def _get(area: Area, name: str, template: str) -> Endpoint:
    return Endpoint(area, name, template, ("GET", "HEAD"))  # HEAD as the web library's GET


WEBSOCKET: Final = _get(Area.WEBSOCKET, "websocket", "/app/{key}")
HEALTHZ: Final = _get(Area.NODE, "healthz", "/healthz")
READYZ: Final = _get(Area.NODE, "readyz", "/readyz")
METRICS: Final = _get(Area.NODE, "metrics", "/metrics")

_APP: Final = "/apps/{app_id}"
_CHANNEL: Final = _APP + "/channels/{channel}"
_TERMINATE: Final = "/users/{user}/terminate_connections"
EVENTS: Final = Endpoint(Area.HTTP_API, "events", _APP + "/events", ("POST",))
BATCH_EVENTS: Final = Endpoint(Area.HTTP_API, "batch_events", _APP + "/batch_events", ("POST",))
CHANNELS: Final = Endpoint(Area.HTTP_API, "channels", _APP + "/channels", ("GET",))
CHANNEL: Final = Endpoint(Area.HTTP_API, "channel", _CHANNEL, ("GET",))
CHANNEL_USERS: Final = Endpoint(Area.HTTP_API, "channel_users", _CHANNEL + "/users", ("GET",))
CHANNEL_HISTORY: Final = Endpoint(Area.HTTP_API, "channel_history", _CHANNEL + "/history", ("GET",))
TERMINATE: Final = Endpoint(Area.HTTP_API, "terminate_connections", _APP + _TERMINATE, ("POST",))
# The PyPI SDK signs and requests this path without /apps/{id} (reference §5.5).
TERMINATE_BY_KEY: Final = Endpoint(Area.HTTP_API, "terminate_connections", _TERMINATE, ("POST",))

ADMIN_PREFIX: Final = "/admin/v1"
_ADMIN_APP: Final = ADMIN_PREFIX + "/apps/{id}"
ADMIN_OPENAPI: Final = Endpoint(Area.ADMIN, "openapi", ADMIN_PREFIX + "/openapi.json", ("GET",))
ADMIN_APPS: Final = Endpoint(Area.ADMIN, "apps", ADMIN_PREFIX + "/apps", ("GET", "POST"))
ADMIN_APP: Final = Endpoint(Area.ADMIN, "app", _ADMIN_APP, ("GET", "PATCH", "DELETE"))
ADMIN_DISABLE: Final = Endpoint(Area.ADMIN, "disable", _ADMIN_APP + "/disable", ("POST",))
ADMIN_ENABLE: Final = Endpoint(Area.ADMIN, "enable", _ADMIN_APP + "/enable", ("POST",))
ADMIN_ROTATE_SECRET: Final = Endpoint(
    Area.ADMIN, "rotate_secret", _ADMIN_APP + "/rotate-secret", ("POST",)
)
ADMIN_USAGE: Final = Endpoint(Area.ADMIN, "usage", _ADMIN_APP + "/usage", ("GET",))
_ADMIN_HOOKS: Final = _ADMIN_APP + "/webhooks"
ADMIN_DEAD_LETTERS: Final = Endpoint(
    Area.ADMIN, "dead_letters", _ADMIN_HOOKS + "/dead-letters", ("GET",)
)
ADMIN_REPLAY: Final = Endpoint(
    Area.ADMIN, "replay", _ADMIN_HOOKS + "/dead-letters/replay", ("POST",)
)
ADMIN_DELIVERIES: Final = Endpoint(Area.ADMIN, "deliveries", _ADMIN_HOOKS + "/deliveries", ("GET",))

ENDPOINTS: Final = (
    WEBSOCKET,
    HEALTHZ,
    READYZ,
    METRICS,
    EVENTS,
    BATCH_EVENTS,
    CHANNELS,
    CHANNEL,
    CHANNEL_USERS,
    CHANNEL_HISTORY,
    TERMINATE,
    TERMINATE_BY_KEY,
    ADMIN_OPENAPI,
    ADMIN_APPS,
    ADMIN_APP,
    ADMIN_DISABLE,
    ADMIN_ENABLE,
    ADMIN_ROTATE_SECRET,
    ADMIN_USAGE,
    ADMIN_DEAD_LETTERS,
    ADMIN_REPLAY,
    ADMIN_DELIVERIES,
)


@dataclass(slots=True)
class _Step:
    """One segment deep in the table: literal children, or one parameter child."""

    literals: dict[str, _Step] = field(default_factory=dict)
    param: tuple[str, _Step] | None = None
    endpoint: Endpoint | None = None


class RoutingTable:
    """Endpoints by template, walked one segment at a time."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self._root = _Step()
        for endpoint in endpoints:
            self._add(endpoint)
        self._known: dict[str, Route] = {}  # rule 6

    def resolve(self, path: str) -> Route:
        """The route of `path` (rule 1); params are empty when no endpoint matched."""
        route = self._known.get(path)
        if route is None:
            route = self._walk(path)
            if len(path) <= MAX_REMEMBERED_PATH:
                if len(self._known) >= MAX_REMEMBERED_PATHS:
                    self._known.clear()
                self._known[path] = route
        return route

    def _add(self, endpoint: Endpoint) -> None:
        step = self._root
        for segment in endpoint.template.split("/")[1:]:
            step = _child(step, segment, endpoint.template)
        if step.endpoint is not None:
            raise ValueError(f"{endpoint.template}: routed twice")
        step.endpoint = endpoint

    def _walk(self, path: str) -> Route:
        if not path.startswith("/"):
            return Route(Area.NOWHERE, None, {})
        step = self._root
        params: dict[str, str] = {}
        for segment in path[1:].split("/"):
            found = step.literals.get(segment)
            if found is None:
                param = step.param
                if param is None or not segment:
                    return Route(_area(path), None, {})
                name, found = param
                params[name] = segment
            step = found
        endpoint = step.endpoint
        if endpoint is None:
            return Route(_area(path), None, {})
        return Route(endpoint.area, endpoint, params)


def _child(step: _Step, segment: str, template: str) -> _Step:
    """The step below `step` for a template's `segment`, added if new (rule 2 checked)."""
    if not segment.startswith("{"):
        if step.param is not None:
            raise ValueError(f"{template}: {segment} beside a parameter")
        return step.literals.setdefault(segment, _Step())
    name = segment[1:-1]
    if step.literals or (step.param is not None and step.param[0] != name):
        raise ValueError(f"{template}: {segment} beside another segment")
    if step.param is None:
        step.param = (name, _Step())
    return step.param[1]


def _area(path: str) -> Area:
    if path.startswith(("/apps/", "/users/")):
        return Area.HTTP_API
    return Area.ADMIN if path.startswith("/admin/") else Area.NOWHERE


TABLE: Final = RoutingTable(ENDPOINTS)


def resolve(path: str) -> Route:
    """The route of `path` in the node's table."""
    return TABLE.resolve(path)
