"""The node's routing table: which endpoint a path names, with which parameters, once."""

from __future__ import annotations

import pytest

from ressonance.server import routes
from ressonance.server.routes import Area, Endpoint, Route, RoutingTable, resolve


@pytest.mark.parametrize(
    ("path", "endpoint", "params"),
    [
        ("/app/app-key", routes.WEBSOCKET, {"key": "app-key"}),
        ("/healthz", routes.HEALTHZ, {}),
        ("/readyz", routes.READYZ, {}),
        ("/metrics", routes.METRICS, {}),
        ("/apps/1/events", routes.EVENTS, {"app_id": "1"}),
        ("/apps/1/batch_events", routes.BATCH_EVENTS, {"app_id": "1"}),
        ("/apps/1/channels", routes.CHANNELS, {"app_id": "1"}),
        ("/apps/1/channels/news", routes.CHANNEL, {"app_id": "1", "channel": "news"}),
        ("/apps/1/channels/users", routes.CHANNEL, {"app_id": "1", "channel": "users"}),
        ("/apps/1/channels/room/users", routes.CHANNEL_USERS, {"app_id": "1", "channel": "room"}),
        (
            "/apps/1/channels/chat-1/history",
            routes.CHANNEL_HISTORY,
            {"app_id": "1", "channel": "chat-1"},
        ),
        (
            "/apps/1/users/u 1/terminate_connections",
            routes.TERMINATE,
            {"app_id": "1", "user": "u 1"},
        ),
        ("/users/u/terminate_connections", routes.TERMINATE_BY_KEY, {"user": "u"}),
        ("/admin/v1/openapi.json", routes.ADMIN_OPENAPI, {}),
        ("/admin/v1/apps", routes.ADMIN_APPS, {}),
        ("/admin/v1/apps/openapi.json", routes.ADMIN_APP, {"id": "openapi.json"}),
        ("/admin/v1/apps/7/rotate-secret", routes.ADMIN_ROTATE_SECRET, {"id": "7"}),
        ("/admin/v1/apps/7/usage", routes.ADMIN_USAGE, {"id": "7"}),
    ],
)
def test_a_path_resolves_to_its_endpoint_and_parameters(
    path: str, endpoint: Endpoint, params: dict[str, str]
) -> None:
    assert resolve(path) == Route(endpoint.area, endpoint, params)


@pytest.mark.parametrize(
    ("path", "area"),
    [
        # Paths of an area that no endpoint has: the area answers them with its own 404.
        ("/apps/", Area.HTTP_API),
        ("/apps//events", Area.HTTP_API),
        ("/apps/1/events/x", Area.HTTP_API),
        ("/apps/1/nothing-here", Area.HTTP_API),
        ("/apps/1/channels/", Area.HTTP_API),
        ("/users/u", Area.HTTP_API),
        ("/admin/v1/nothing", Area.ADMIN),
        ("/admin/v2/apps", Area.ADMIN),
        ("/admin/v1/openapiXjson", Area.ADMIN),  # "." is not a wildcard
        ("/admin/v1/apps/", Area.ADMIN),
        # Nobody's.
        ("/", Area.NOWHERE),
        ("", Area.NOWHERE),
        ("apps/1/events", Area.NOWHERE),
        ("/app/", Area.NOWHERE),
        ("/app/k/extra", Area.NOWHERE),
        ("/app", Area.NOWHERE),
        ("/apps", Area.NOWHERE),
        ("/admin", Area.NOWHERE),
        ("/admin/v1", Area.ADMIN),
        ("/healthz/", Area.NOWHERE),
        ("/HEALTHZ", Area.NOWHERE),
    ],
)
def test_a_path_without_an_endpoint_keeps_its_area(path: str, area: Area) -> None:
    assert resolve(path) == Route(area, None, {})


def test_endpoint_names_label_metrics_so_they_are_few_and_plain() -> None:
    names = {endpoint.name for endpoint in routes.ENDPOINTS}
    assert all(name.replace("_", "").isalpha() for name in names)
    http_api = {e.name for e in routes.ENDPOINTS if e.area is Area.HTTP_API}
    assert http_api == {
        "events",
        "batch_events",
        "channels",
        "channel",
        "channel_users",
        "channel_history",
        "terminate_connections",
    }


@pytest.mark.parametrize(
    "templates",
    [
        ("/a/{x}", "/a/b"),  # a literal beside a parameter: the walk would have to choose
        ("/a/b", "/a/{x}"),
        ("/a/{x}", "/a/{y}/c"),  # one position, two names
        ("/a/{x}", "/a/{x}"),
    ],
)
def test_an_ambiguous_table_is_refused_when_built(templates: tuple[str, ...]) -> None:
    endpoints = [Endpoint(Area.NODE, "e", template, ("GET",)) for template in templates]
    with pytest.raises(ValueError, match="/a/"):
        RoutingTable(endpoints)


def test_the_table_remembers_few_short_paths_and_forgets_them_when_full() -> None:
    table = RoutingTable(routes.ENDPOINTS)
    first = table.resolve("/apps/1/events")
    assert table.resolve("/apps/1/events") is first  # remembered: not walked again
    long_path = "/apps/" + "x" * routes.MAX_REMEMBERED_PATH + "/events"
    assert table.resolve(long_path) is not table.resolve(long_path)  # too long to keep
    for index in range(routes.MAX_REMEMBERED_PATHS * 2):
        assert table.resolve(f"/apps/{index}/events").params == {"app_id": str(index)}
        assert len(table._known) <= routes.MAX_REMEMBERED_PATHS
    assert table.resolve("/apps/1/events") == first
