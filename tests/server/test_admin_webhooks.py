"""The admin API's webhook routes (dead letters, replay, delivery log) over a SQLite queue.

Answers are checked against the OpenAPI document by `call`, as in test_admin_api.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from ressonance.apps.admin import AppAdmin
from ressonance.apps.base import AppRecord
from ressonance.apps.memory import MemoryAppRegistry
from ressonance.protocol.webhooks import WebhookEndpoint, lane_id
from ressonance.server.admin_api import AdminApi
from ressonance.state.base import DeliveryAttempt
from ressonance.state.memory import MemoryUsageStore
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue
from tests.fakes import FakeClock
from tests.server.test_admin_api import TOKEN, call

FIRST = "http://127.0.0.1:9/first"
SECOND = "http://127.0.0.1:9/second"
HOOKS = [
    {"url": FIRST, "event_types": ["client_event"]},
    {"url": SECOND, "event_types": ["client_event"], "headers": {"Authorization": "x"}},
]
LANE = lane_id("1", WebhookEndpoint(FIRST, ("client_event",)))
EVENT = {"name": "client_event", "channel": "private-a", "event": "client-x", "id": "e1"}


@pytest.fixture
async def queue() -> AsyncIterator[SqliteWebhookQueue]:
    queue = SqliteWebhookQueue(None, node_id="n", clock=FakeClock())
    await queue.open()
    yield queue
    await queue.close()


@pytest.fixture
async def api(queue: SqliteWebhookQueue) -> AdminApi:
    registry = MemoryAppRegistry()
    await registry.create(AppRecord("1", "k", "s" * 32, settings={"webhooks": HOOKS}))
    return AdminApi(AppAdmin(registry, {}), MemoryUsageStore(), queue, token=TOKEN)


async def dead(queue: SqliteWebhookQueue, count: int) -> None:
    for index in range(count):
        queue.add([LANE], "private-a", orjson.dumps({**EVENT, "id": f"e{index}"}))
    await queue.flush()
    assert await queue.claim(LANE)
    events = await queue.read(LANE)
    await queue.dead_letter(LANE, events, "HTTP 500", 1_700_000_000_000)


async def test_dead_letters_are_listed_oldest_first_and_paged(
    api: AdminApi, queue: SqliteWebhookQueue
) -> None:
    await dead(queue, 3)

    first = await call(api, "GET", "/apps/1/webhooks/dead-letters", query={"limit": "2"})

    assert first.status == 200
    letters = first.body["dead_letters"]
    assert [d["event"]["id"] for d in letters] == ["e0", "e1"]
    assert letters[0]["endpoint"] == FIRST
    assert (letters[0]["channel"], letters[0]["reason"]) == ("private-a", "HTTP 500")
    after = {"after": str(first.body["next"])}
    rest = await call(api, "GET", "/apps/1/webhooks/dead-letters", query=after)
    assert [d["event"]["id"] for d in rest.body["dead_letters"]] == ["e2"]
    assert rest.body["next"] is None


async def test_replay_by_ids_and_all(api: AdminApi, queue: SqliteWebhookQueue) -> None:
    await dead(queue, 3)
    listed = await call(api, "GET", "/apps/1/webhooks/dead-letters")
    first_id = listed.body["dead_letters"][0]["id"]

    one = await call(api, "POST", "/apps/1/webhooks/dead-letters/replay", {"ids": [first_id]})
    assert (one.status, one.body) == (200, {"replayed": 1})
    rest = await call(api, "POST", "/apps/1/webhooks/dead-letters/replay", {"all": True})
    assert rest.body == {"replayed": 2}

    await queue.flush()
    assert [orjson.loads(e.event)["id"] for e in await queue.read(LANE)] == ["e0", "e1", "e2"]
    empty = await call(api, "GET", "/apps/1/webhooks/dead-letters")
    assert empty.body == {"dead_letters": [], "next": None}


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": [1]}, {"all": False}, {"x": 1}])
async def test_a_bad_replay_body_is_422(api: AdminApi, body: object) -> None:
    response = await call(api, "POST", "/apps/1/webhooks/dead-letters/replay", body)
    assert response.status == 422


async def test_deliveries_per_endpoint_by_index_or_url(
    api: AdminApi, queue: SqliteWebhookQueue
) -> None:
    await queue.record_attempt(LANE, DeliveryAttempt(1000, 503, 12, 2, "HTTP 503"))
    await queue.record_attempt(LANE, DeliveryAttempt(2000, 200, 8, 2))
    await queue.flush()

    every = await call(api, "GET", "/apps/1/webhooks/deliveries")
    by_url = await call(api, "GET", "/apps/1/webhooks/deliveries", query={"endpoint": FIRST})
    second = await call(api, "GET", "/apps/1/webhooks/deliveries", query={"endpoint": "1"})

    assert [e["url"] for e in every.body["endpoints"]] == [FIRST, SECOND]
    log = by_url.body["endpoints"][0]
    assert log["index"] == 0
    assert [(a["status"], a["latency_ms"], a["error"]) for a in log["attempts"]] == [
        (200, 8, ""),
        (503, 12, "HTTP 503"),
    ]
    assert second.body == {"endpoints": [{"index": 1, "url": SECOND, "attempts": []}]}
    assert "Authorization" not in str(every.body)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/apps/1/webhooks/deliveries", {"endpoint": "7"}),
        ("/apps/1/webhooks/deliveries", {"limit": "0"}),
        ("/apps/1/webhooks/dead-letters", {"limit": "x"}),
    ],
)
async def test_a_bad_query_is_422(api: AdminApi, path: str, query: dict[str, str]) -> None:
    assert (await call(api, "GET", path, query=query)).status == 422


async def test_unknown_apps_and_missing_tokens(api: AdminApi) -> None:
    missing = await call(api, "GET", "/apps/9/webhooks/dead-letters")
    unauthorized = await call(api, "GET", "/apps/1/webhooks/deliveries", authorization="")
    wrong_method = await call(api, "GET", "/apps/1/webhooks/dead-letters/replay")

    assert (missing.status, unauthorized.status, wrong_method.status) == (404, 401, 405)
