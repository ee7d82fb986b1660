"""GET /metrics on a running server, parsed as Prometheus parses it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import RunningServer
from tests.e2e.pusher_ws import connect, open_socket, trigger, ws_url

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(http: aiohttp.ClientSession, server: RunningServer) -> Samples:
    async with http.get(f"{server.http_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("ressonance_"), family.name
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[("ressonance_" + name, frozenset(labels.items()))]


async def test_metrics_reflect_connections_publishes_and_http_calls(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    app = server.app_id
    refused = await open_socket(http, ws_url(server, key="no-such-key"))
    await refused.receive()  # pusher:error 4001
    await refused.receive()  # close 4001
    await refused.close()
    async with connect(http, server) as first, connect(http, server) as second:
        for socket in (first, second):
            await socket.subscribe("news")
        await trigger(http, server, ["news"], "update", '{"n": 1}')
        for socket in (first, second):
            await socket.expect("update", "news")

        samples = await scrape(http, server)

    assert value(samples, "connections") == 2
    assert value(samples, "connections_peak") == 2
    assert value(samples, "connections_opened_total") == 2
    assert value(samples, "connections_refused_total", code="4001") == 1
    assert value(samples, "app_connections", app_id=app) == 2
    assert value(samples, "http_requests_total", endpoint="events", status="200") == 1
    assert value(samples, "events_published_total", app_id=app) == 1
    assert value(samples, "publish_to_write_seconds_count") == 1
    assert value(samples, "publish_to_write_seconds_bucket", le="+Inf") == 1
    # connection_established + subscription_succeeded (+ counts) each, then one update each
    assert value(samples, "websocket_messages_sent_total", app_id=app) >= 6
    assert value(samples, "websocket_messages_received_total", app_id=app) == 2
    assert value(samples, "event_loop_lag_seconds") >= 0
    assert value(samples, "slow_client_disconnects_total", app_id=app) == 0


async def test_closed_connections_are_counted_by_code(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server):
        pass  # aiohttp closes with 1000

    for _ in range(100):  # the server counts it once its side of the close has run
        samples = await scrape(http, server)
        if samples.get(("ressonance_connections_closed_total", frozenset({("code", "1000")}))):
            break
        await asyncio.sleep(0.05)
    assert value(samples, "connections_closed_total", code="1000") == 1
    assert value(samples, "connections") == 0


async def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with http.get(f"{server.http_url}/metrics", headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await response.text()
    assert text.endswith("# EOF\n")
    assert "ressonance_connections_opened_total" in text
