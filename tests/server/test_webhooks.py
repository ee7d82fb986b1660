"""The webhook sender (server/webhooks.py, webhook_lane.py) against a real local receiver.

A queue in memory (SQLite), apps in memory, a receiver on a loopback port that can fail,
and short delays and windows. Bounds on waiting are generous; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pusher
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ressonance.apps.memory import MemoryAppStore
from ressonance.protocol.app import App
from ressonance.protocol.webhooks import event_json, lane_id, parse_endpoints
from ressonance.server.webhook_client import Answer
from ressonance.server.webhook_lane import Batch, LaneWorker
from ressonance.server.webhook_metrics import WebhookMetrics
from ressonance.server.webhook_settings import WebhookSettings
from ressonance.server.webhooks import WebhookSender
from ressonance.state.base import QueuedEvent
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue
from tests.webhook_receiver import Receiver

SECRET = "s3cret-of-the-app"
HEADER_VALUE = "Bearer header-secret"
FAST = WebhookSettings(
    retry_initial=0.05,
    retry_max=0.2,
    batch_wait=0.01,
    poll_interval=0.05,
    lease_ttl=2.0,
    idle_release=0.5,
)


def app_for(*urls: str, **endpoint: Any) -> App:
    endpoints = parse_endpoints(
        [
            {
                "url": url,
                "event_types": ["client_event", "channel_occupied"],
                "headers": {"Authorization": HEADER_VALUE},
                **endpoint,
            }
            for url in urls
        ]
    )
    return App(id="7", key="app-key", secret=SECRET, webhooks=endpoints)


@dataclasses.dataclass
class Harness:
    queue: SqliteWebhookQueue
    apps: MemoryAppStore
    app: App
    metrics: WebhookMetrics
    sender: WebhookSender

    def lane(self, index: int = 0) -> str:
        return lane_id(self.app.id, self.app.webhooks[index])

    def add(self, channel: str, n: int, index: int = 0) -> None:
        event = event_json("client_event", channel, f"e{n}", event="client-x", data=str(n))
        self.queue.add([self.lane(index)], channel, event)


@contextlib.asynccontextmanager
async def running(app: App, settings: WebhookSettings = FAST) -> AsyncIterator[Harness]:
    queue = SqliteWebhookQueue(None, node_id="node-a", lease_ttl=settings.lease_ttl)
    apps = MemoryAppStore([app])
    metrics = WebhookMetrics(CollectorRegistry())
    sender = WebhookSender(queue=queue, apps=apps, settings=settings, metrics=metrics)
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(0)
    try:
        yield Harness(queue, apps, app, metrics, sender)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await queue.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver()
    await started.start()
    yield started
    await started.stop()


async def counted(harness: Harness, outcome: str, events: int = 1) -> None:
    """Wait until the sender has handled the answers (a receiver sees a request first)."""
    for _ in range(500):
        if harness.metrics.events.get(("7", outcome), 0) >= events:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{events} events {outcome} not counted")


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]


# --- the request ---------------------------------------------------------------------------


async def test_events_arrive_signed_as_pushers_sdks_expect(receiver: Receiver) -> None:
    async with running(app_for(receiver.url)) as harness:
        harness.add("private-a", 1)
        await receiver.until(lambda: len(receiver.delivered()) == 1)

    (request,) = receiver.requests
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Pusher-Key"] == "app-key"
    assert request.headers["Authorization"] == HEADER_VALUE
    sdk = pusher.Pusher(app_id="7", key="app-key", secret=SECRET)
    body = sdk.validate_webhook(
        request.headers["X-Pusher-Key"], request.headers["X-Pusher-Signature"], request.body
    )
    assert body is not None
    assert abs(body["time_ms"] - time.time() * 1000) < 60_000
    assert body["events"] == [
        {
            "name": "client_event",
            "channel": "private-a",
            "event": "client-x",
            "data": "1",
            "id": "e1",
        }
    ]


async def test_delivered_events_leave_the_queue_and_are_logged(receiver: Receiver) -> None:
    async with running(app_for(receiver.url)) as harness:
        harness.add("private-a", 1)
        await counted(harness, "delivered")
        await harness.queue.flush()

        assert await harness.queue.read(harness.lane()) == []
        log = await harness.queue.delivery_log(harness.lane())
        assert [(a.status, a.events, a.error) for a in log] == [(200, 1, "")]
        assert harness.metrics.events[("7", "delivered")] == 1


async def test_events_are_batched_per_endpoint_in_order(receiver: Receiver) -> None:
    settings = dataclasses.replace(FAST, batch_size=3, batch_wait=0.3)
    async with running(app_for(receiver.url), settings) as harness:
        for n in range(7):
            harness.add(f"private-{n % 2}", n)
        await receiver.until(lambda: len(receiver.delivered()) == 7)

    assert sorted(ids(receiver.delivered())) == [f"e{n}" for n in range(7)]
    assert all(len(r.events) <= 3 for r in receiver.requests)
    assert len(receiver.requests) < 7  # batched
    for channel in ("private-0", "private-1"):
        in_channel = [e["id"] for e in receiver.delivered() if e["channel"] == channel]
        assert in_channel == sorted(in_channel, key=lambda i: int(i[1:]))


async def test_each_endpoint_gets_its_own_events(receiver: Receiver) -> None:
    other = Receiver()
    await other.start()
    try:
        async with running(app_for(receiver.url, other.url)) as harness:
            harness.add("private-a", 1, index=0)
            harness.add("private-a", 2, index=1)
            await receiver.until(lambda: len(receiver.delivered()) == 1)
            await other.until(lambda: len(other.delivered()) == 1)
    finally:
        await other.stop()

    assert ids(receiver.delivered()) == ["e1"]
    assert ids(other.delivered()) == ["e2"]


# --- failures --------------------------------------------------------------------------------


async def test_failed_requests_are_retried_until_delivered(receiver: Receiver) -> None:
    receiver.answer = lambda number, body: web.Response(status=500 if number <= 3 else 200)
    async with running(app_for(receiver.url)) as harness:
        harness.add("private-a", 1)
        await counted(harness, "delivered")
        await harness.queue.flush()
        log = await harness.queue.delivery_log(harness.lane())

    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert [a.status for a in reversed(log)] == [500, 500, 500, 200]
    assert log[-1].error == "HTTP 500"
    assert harness.metrics.retries["7"] == 3
    # each attempt is signed again, with its own time
    times = {json.loads(r.body)["time_ms"] for r in receiver.requests}
    assert len(times) > 1


async def test_a_retried_batch_holds_back_the_later_events_of_its_channel(
    receiver: Receiver,
) -> None:
    failed_once: set[str] = set()

    def answer(number: int, body: bytes) -> web.Response:
        channels = {e["channel"] for e in json.loads(body)["events"]}
        if "private-slow" in channels and "private-slow" not in failed_once:
            failed_once.add("private-slow")
            return web.Response(status=503)
        return web.Response(status=200)

    receiver.answer = answer
    settings = dataclasses.replace(FAST, batch_size=1, retry_initial=0.3, retry_max=0.3)
    async with running(app_for(receiver.url), settings) as harness:
        harness.add("private-slow", 1)
        harness.add("private-fast", 2)
        harness.add("private-slow", 3)
        await receiver.until(lambda: len(receiver.delivered()) == 3)

    delivered = ids(receiver.delivered())
    assert delivered.index("e1") < delivered.index("e3")  # order kept within the channel
    assert delivered.index("e2") < delivered.index("e1")  # other channels did not wait


async def test_events_past_the_window_become_dead_letters_and_are_replayed(
    receiver: Receiver,
) -> None:
    failing = True
    receiver.answer = lambda number, body: web.Response(status=500 if failing else 200)
    settings = dataclasses.replace(FAST, retry_window=0.5)
    async with running(app_for(receiver.url), settings) as harness:
        harness.add("private-a", 1)
        harness.add("private-a", 2)
        for _ in range(200):
            if len(await harness.queue.dead_letters("7")) == 2:
                break
            await asyncio.sleep(0.05)
        letters = await harness.queue.dead_letters("7")
        assert [orjson.loads(d.event)["id"] for d in letters] == ["e1", "e2"]
        assert all(d.reason.startswith("retry window ended") for d in letters)
        assert harness.metrics.events[("7", "dead_lettered")] == 2

        failing = False
        assert await harness.queue.replay("7", [d.id for d in letters]) == 2
        await receiver.until(lambda: len(receiver.delivered()) == 2)

    assert ids(receiver.delivered()) == ["e1", "e2"]  # the same ids as when they happened


async def test_retry_after_is_honoured_on_429_and_503() -> None:
    now = 1000.0
    queue = SqliteWebhookQueue(None, node_id="a")
    worker = LaneWorker(
        "7:abc",
        queue=queue,
        apps=MemoryAppStore([]),
        client=None,  # type: ignore[arg-type]
        settings=FAST,
        metrics=WebhookMetrics(CollectorRegistry()),
        clock=lambda: now,
    )
    event = QueuedEvent("1", "x", b"{}", int(now * 1000))
    batch = Batch([event])
    worker.batches.append(batch)

    await worker._failed(batch, Answer(429, retry_after=30.0, error="HTTP 429"))
    assert batch.retry_at == now + 30.0
    await worker._failed(batch, Answer(500, error="HTTP 500"))
    assert now + FAST.retry_initial * 2 * 0.5 <= batch.retry_at <= now + FAST.retry_initial * 2
    await queue.close()


async def test_a_dead_endpoint_opens_its_circuit_without_delaying_another(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Receiver()  # never started: connections are refused
    caplog.set_level(logging.INFO, logger="ressonance.server.webhook_lane")
    settings = dataclasses.replace(FAST, circuit_failures=2)
    async with running(app_for(dead.url, receiver.url), settings) as harness:
        harness.add("private-a", 1, index=0)
        for _ in range(200):
            if harness.sender.workers.get(harness.lane(0)) and (
                harness.sender.workers[harness.lane(0)].health.state == "circuit_open"
            ):
                break
            await asyncio.sleep(0.02)
        harness.add("private-a", 2, index=1)
        await receiver.until(lambda: len(receiver.delivered()) == 1)
        assert harness.sender.workers[harness.lane(0)].health.state == "circuit_open"

        await dead.start()  # it comes back: the probe succeeds, the circuit closes
        try:
            await dead.until(lambda: len(dead.delivered()) == 1)
        finally:
            await dead.stop()

    states = [r.getMessage() for r in caplog.records if "webhook_endpoint_state" in r.getMessage()]
    assert [s.split("state=")[1].split()[0] for s in states] == [
        "failing",
        "circuit_open",
        "healthy",
    ]
    assert SECRET not in caplog.text
    assert "header-secret" not in caplog.text


async def test_an_endpoint_no_longer_configured_drops_its_events(receiver: Receiver) -> None:
    app = app_for(receiver.url)
    async with running(app) as harness:
        harness.apps = MemoryAppStore([dataclasses.replace(app, webhooks=())])
        harness.sender.apps = harness.apps
        harness.add("private-a", 1)
        for _ in range(200):
            if harness.metrics.events.get(("7", "dropped")):
                break
            await asyncio.sleep(0.02)

    assert harness.metrics.events[("7", "dropped")] == 1
    assert receiver.requests == []


# --- where requests may go ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://169.254.169.254/latest/meta-data/", ["public", "private", "loopback"]),
        ("http://[::ffff:169.254.169.254]/", ["public", "private", "loopback"]),
        ("http://localhost:{port}/hooks", ["public"]),  # a name that resolves to loopback
        ("http://127.0.0.1:{port}/hooks", ["public", "private"]),
    ],
)
async def test_refused_addresses_are_never_connected_to(
    receiver: Receiver, url: str, allowed: list[str]
) -> None:
    settings = dataclasses.replace(FAST, allowed_networks=tuple(allowed), retry_window=0.3)
    async with running(app_for(url.format(port=receiver.port)), settings) as harness:
        harness.add("private-a", 1)
        for _ in range(200):
            if await harness.queue.dead_letters("7"):
                break
            await asyncio.sleep(0.05)
        await harness.queue.flush()
        log = await harness.queue.delivery_log(harness.lane())

    assert receiver.requests == []
    assert log[0].error == "address refused by webhook_allowed_networks"


# --- metrics ---------------------------------------------------------------------------------


async def test_the_sender_is_measured(receiver: Receiver) -> None:
    registry = CollectorRegistry()
    receiver.answer = lambda number, body: web.Response(status=500 if number == 1 else 200)
    app = app_for(receiver.url)
    queue = SqliteWebhookQueue(None, node_id="node-a", lease_ttl=FAST.lease_ttl)
    metrics = WebhookMetrics(registry)
    sender = WebhookSender(queue=queue, apps=MemoryAppStore([app]), settings=FAST, metrics=metrics)
    task = asyncio.create_task(sender.run())
    try:
        queue.add([lane_id("7", app.webhooks[0])], "private-a", event_json("x", "private-a", "e1"))
        for _ in range(200):  # the sender counts once the answer is handled
            if metrics.events.get(("7", "delivered")):
                break
            await asyncio.sleep(0.02)
        await sender._refresh_depth()
        scraped = generate_latest(registry).decode()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await queue.close()

    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert (
        samples[("ressonance_webhook_events_total", (("app_id", "7"), ("outcome", "delivered")))]
        == 1
    )
    assert (
        samples[("ressonance_webhook_events_total", (("app_id", "7"), ("outcome", "failed")))] == 1
    )
    assert samples[("ressonance_webhook_retries_total", (("app_id", "7"),))] == 1
    assert samples[("ressonance_webhook_delivery_seconds_count", ())] == 1
    assert ("ressonance_webhook_queue_depth", (("app_id", "7"),)) in samples
    assert ("ressonance_webhook_oldest_pending_seconds", (("app_id", "7"),)) in samples
    assert samples[("ressonance_webhook_endpoints", (("state", "healthy"),))] == 1
    assert "ressonance_webhook_buffer_dropped_total" in {s for s, _ in samples}
