"""The HTTP API's delivery features as a back end sees them: the serials a publish was given,
the history read (GET /apps/{id}/channels/{name}/history) and idempotent publish."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Any

import pytest

from ressonance.backbone.base import BackboneUnavailableError
from ressonance.server import idempotency
from ressonance.server.http_api import ApiRequest, HttpApi
from ressonance.server.node import Node
from ressonance.server.service import http_api
from tests.fakes import FakeClock
from tests.server.conftest import APP, Connect, MakeNode
from tests.server.test_http_api import error, ok, signed

CHAT = dataclasses.replace(APP, history_channels=("chat-*",), history_size=20, history_ttl=60)


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    return await make_node(CHAT)


@pytest.fixture
def api(node: Node) -> HttpApi:
    return http_api(node)


def event(channel: str | list[str], n: int = 0, **extra: Any) -> dict[str, Any]:
    key = "channels" if isinstance(channel, list) else "channel"
    return {"name": "message", key: channel, "data": f'{{"n":{n}}}', **extra}


def keyed(request: ApiRequest, key: str) -> ApiRequest:
    return dataclasses.replace(request, idempotency_key=key)


async def post(api: HttpApi, clock: FakeClock, body: Any, path: str = "/apps/1/events") -> Any:
    return ok(await api.handle(signed(clock, "POST", path, body, app=CHAT)))


async def history(api: HttpApi, clock: FakeClock, channel: str = "chat-1", **query: str) -> Any:
    path = f"/apps/1/channels/{channel}/history"
    return ok(await api.handle(signed(clock, "GET", path, query=query, app=CHAT)))


# --- serials in the publish answer -------------------------------------------------------------


async def publish(api: HttpApi, clock: FakeClock, channel: str, n: int = 0) -> int:
    """Publish to `channel`, asking for its serial; the serial."""
    answer = await post(api, clock, event(channel, n, info="serial"))
    serial = answer["channels"][channel]["serial"]
    assert isinstance(serial, int)
    return serial


async def test_a_publish_asked_for_info_serial_answers_each_history_channels_serial(
    api: HttpApi, clock: FakeClock
) -> None:
    first = await post(api, clock, event(["chat-1", "news"], info="serial"))
    second = await post(api, clock, event("chat-1", info="serial,subscription_count"))

    serial = first["channels"]["chat-1"]["serial"]
    assert first == {"channels": {"chat-1": {"serial": serial}, "news": {}}}
    assert second == {"channels": {"chat-1": {"serial": serial + 1, "subscription_count": 0}}}


async def test_a_publish_that_does_not_ask_answers_as_pusher_does(
    api: HttpApi, clock: FakeClock
) -> None:
    assert await post(api, clock, event("chat-1")) == {}
    assert await post(api, clock, event("news")) == {}


async def test_a_batch_answers_each_events_serial_in_batch_order(
    api: HttpApi, clock: FakeClock
) -> None:
    body = {
        "batch": [event("chat-1", info="serial"), event("news", info="serial"), event("chat-2")]
    }

    answer = await post(api, clock, body, "/apps/1/batch_events")

    one, none, two = answer["batch"]
    assert (set(one), none, two) == ({"serial"}, {}, {})


# --- the history read ------------------------------------------------------------------------


async def test_history_answers_the_newest_events_in_order_with_the_bounds(
    api: HttpApi, clock: FakeClock
) -> None:
    serials = [await publish(api, clock, "chat-1", n) for n in range(5)]

    page = await history(api, clock, limit="3")

    assert page["channel"] == "chat-1"
    assert [e["serial"] for e in page["events"]] == serials[2:]
    assert page["events"][0] == {
        "serial": serials[2],
        "name": "message",
        "data": '{"n":2}',
        "time_ms": int(clock() * 1000),
    }
    assert (page["first_serial"], page["last_serial"], page["has_more"]) == (
        serials[0],
        serials[4],
        True,
    )


async def test_history_pages_forward_with_after_and_backward_with_before(
    api: HttpApi, clock: FakeClock
) -> None:
    s = [await publish(api, clock, "chat-1", n) for n in range(5)]

    forward = await history(api, clock, after=str(s[0]), limit="2")
    rest = await history(api, clock, after=str(s[2]), limit="2")
    back = await history(api, clock, before=str(s[2]), limit="5")
    window = await history(api, clock, after=str(s[0]), before=str(s[3]))

    assert ([e["serial"] for e in forward["events"]], forward["has_more"]) == (s[1:3], True)
    assert ([e["serial"] for e in rest["events"]], rest["has_more"]) == (s[3:], False)
    assert ([e["serial"] for e in back["events"]], back["has_more"]) == (s[:2], False)
    assert ([e["serial"] for e in window["events"]], window["has_more"]) == (s[1:3], False)


async def test_history_of_an_unused_channel_is_empty(api: HttpApi, clock: FakeClock) -> None:
    page = await history(api, clock, "chat-quiet")

    assert page == {
        "channel": "chat-quiet",
        "events": [],
        "first_serial": None,
        "last_serial": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    ("channel", "query", "status", "message"),
    [
        ("news", {}, 404, "Channel news keeps no history"),
        ("chat-1", {"limit": "5000"}, 400, "'limit' must be 1 to 1000"),
        ("chat-1", {"after": "9", "before": "3"}, 400, "'before' must be greater than 'after'"),
        ("chat-1", {"after": "x"}, 400, "'after' must be a non-negative integer"),
    ],
)
async def test_bad_history_reads_are_json_errors(
    api: HttpApi, clock: FakeClock, channel: str, query: dict[str, str], status: int, message: str
) -> None:
    path = f"/apps/1/channels/{channel}/history"
    response = await api.handle(signed(clock, "GET", path, query=query, app=CHAT))

    assert error(response, status).startswith(message)


async def test_history_reads_count_against_the_read_quota(
    make_node: MakeNode, clock: FakeClock
) -> None:
    limited = dataclasses.replace(CHAT, max_read_requests_per_sec=1)
    api = http_api(await make_node(limited))
    path = "/apps/1/channels/chat-1/history"

    ok(await api.handle(signed(clock, "GET", path, app=limited)))
    refused = await api.handle(signed(clock, "GET", path, app=limited))

    assert refused.status == 429


# --- idempotent publish ------------------------------------------------------------------------


async def test_a_repeated_idempotency_key_answers_the_same_and_sends_nothing(
    api: HttpApi, node: Node, clock: FakeClock, connect: Connect
) -> None:
    client = connect(CHAT)
    await client.subscribe("chat-1")
    client.outlet.clear()
    request = keyed(signed(clock, "POST", "/apps/1/events", event("chat-1"), app=CHAT), "order-7")

    first = ok(await api.handle(request))
    again = ok(await api.handle(request))

    assert first == again
    assert len(client.outlet.received("message", channel="chat-1")) == 1
    assert node.metrics.app(CHAT.id).idempotent_replays == 1


async def test_the_body_field_serves_sdks_that_cannot_set_headers(
    api: HttpApi, node: Node, clock: FakeClock
) -> None:
    body = event("chat-1", idempotency_key="order-8")

    first = await post(api, clock, body)
    again = await post(api, clock, body)
    batch = {"batch": [event("chat-1")], "idempotency_key": "batch-1"}
    batch_first = await post(api, clock, batch, "/apps/1/batch_events")
    batch_again = await post(api, clock, batch, "/apps/1/batch_events")

    assert first == again
    assert batch_first == batch_again
    page = await node.history.read(CHAT, "chat-1", limit=10)
    assert len(page.events) == 2


async def test_the_same_key_with_another_request_is_a_422(api: HttpApi, clock: FakeClock) -> None:
    ok(await api.handle(keyed(signed(clock, "POST", "/apps/1/events", event("chat-1")), "k")))

    other = keyed(signed(clock, "POST", "/apps/1/events", event("chat-1", 2)), "k")

    assert "different request" in error(await api.handle(other), 422)


async def test_keys_of_one_app_are_not_another_apps(make_node: MakeNode, clock: FakeClock) -> None:
    other = dataclasses.replace(CHAT, id="2", key="other-key", secret="other-secret")
    api = http_api(await make_node(CHAT, other))

    ok(await api.handle(keyed(signed(clock, "POST", "/apps/1/events", event("chat-1")), "k")))
    body = event("chat-1", info="serial")
    answer = ok(
        await api.handle(keyed(signed(clock, "POST", "/apps/2/events", body, app=other), "k"))
    )

    assert "serial" in answer["channels"]["chat-1"]  # published: not app 1's answer


async def test_concurrent_requests_with_one_key_publish_once(
    api: HttpApi, node: Node, clock: FakeClock
) -> None:
    request = keyed(signed(clock, "POST", "/apps/1/events", event("chat-1")), "order-9")

    answers = await asyncio.gather(*(api.handle(request) for _ in range(5)))

    assert len({str(ok(answer)) for answer in answers}) == 1
    page = await node.history.read(CHAT, "chat-1", limit=10)
    assert len(page.events) == 1


async def test_a_failed_publish_frees_its_key_for_the_retry(
    api: HttpApi, node: Node, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = keyed(signed(clock, "POST", "/apps/1/events", event("chat-1")), "order-10")

    async def down(*args: object) -> None:
        raise BackboneUnavailableError("down")

    monkeypatch.setattr(node.backbone, "publish", down)
    assert (await api.handle(request)).status == 503
    monkeypatch.undo()

    ok(await api.handle(request))


async def test_a_key_still_being_answered_is_a_409_after_a_while(
    api: HttpApi, node: Node, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.05)
    await node.idempotency.claim(CHAT.id, "slow", "someone else's fingerprint", 60)
    request = keyed(signed(clock, "POST", "/apps/1/events", event("chat-1")), "slow")

    assert "different request" in error(await api.handle(request), 422)
    fingerprint = b"POST /apps/1/events\n" + request.body
    await node.idempotency.release(CHAT.id, "slow")
    await node.idempotency.claim(CHAT.id, "slow", hashlib.sha256(fingerprint).hexdigest(), 60)

    assert "still being answered" in error(await api.handle(request), 409)


async def test_a_bad_header_key_is_a_400(api: HttpApi, clock: FakeClock) -> None:
    request = keyed(signed(clock, "POST", "/apps/1/events", event("chat-1")), "a b")

    assert "Idempotency key" in error(await api.handle(request), 400)
