"""Delivery you can count on across three nodes over one Redis (valkey): a client cut off
from one node resumes on another, events published at full rate while clients resume are
neither lost nor doubled, and one idempotency key sent to two nodes at once publishes once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ressonance.client import PusherSocket, RestClient
from tests import services
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.node_clients import run_scenario
from tests.e2e.proxy import proxied
from tests.e2e.test_recovery import JS_WINDOW, history, messages, numbers

pytestmark = pytest.mark.e2e


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[RunningServer]]:
    """Three nodes sharing a valkey of this test's own (backbone and state)."""
    with services.running(services.valkey(tmp_path / "valkey")) as redis:
        config = tmp_path / "cluster.toml"
        config.write_text(f'[server]\nbackbone = "{redis.url}"\nstate = "{redis.url}"\n')
        started: list[RunningServer] = []
        try:
            for _ in range(3):
                args = ["--config", str(config)]
                started.append(start_server(tmp_path, extra_env=history(JS_WINDOW), args=args))
            yield started
        finally:
            for node in started:
                stop_server(node)


def rest(node: RunningServer) -> RestClient:
    return RestClient(node.app_id, node.key, node.secret, node.http_url)


def test_pusher_js_cut_from_one_node_resumes_on_another(
    nodes: list[RunningServer], ressonance_js: Path
) -> None:
    upstreams = f"{nodes[0].port},{nodes[1].port}"  # publishes go through node 2
    with run_scenario(nodes[2], "recovery.mjs", {"E2E_UPSTREAMS": upstreams}) as seen:
        assert seen["upstreams"] == [nodes[1].port]
        assert seen["received"] == list(range(110))
        assert seen["resume_failed"] == []


async def test_clients_resuming_on_other_nodes_during_a_full_rate_publish_lose_and_double_nothing(
    nodes: list[RunningServer],
) -> None:
    ports = [node.port for node in nodes]
    published = 0
    stop = asyncio.Event()

    async def publish_at_full_rate() -> None:
        nonlocal published
        apis = [rest(node) for node in nodes]
        try:
            while not stop.is_set():
                await apis[published % 3].trigger("chat-seam", "message", {"n": published})
                published += 1
        finally:
            for api in apis:
                await api.close()

    async with contextlib.AsyncExitStack() as stack:
        proxies = [await stack.enter_async_context(proxied(ports)) for _ in range(4)]
        sockets = [
            await stack.enter_async_context(
                PusherSocket(f"ws://127.0.0.1:{port}", nodes[0].key, max_backoff=0.5)
            )
            for _, port in proxies
        ]
        for sock in sockets:
            await sock.subscribe("chat-seam")
        publisher = asyncio.create_task(publish_at_full_rate())
        for _ in range(3):  # each client is cut and resumes on the next node, thrice
            for proxy, _ in proxies:
                await asyncio.sleep(0.3)
                proxy.cut()
                await asyncio.sleep(0.2)
                proxy.restore(next_upstream=True)
        await asyncio.sleep(1.0)
        stop.set()
        await publisher
        for sock in sockets:
            got = await messages(sock, published, 30)
            assert numbers(got) == list(range(published))  # each once, in order
            for failed in (m for m in got if m.event == "ressonance:resume_failed"):
                raise AssertionError(f"a resume failed: {failed}")
    assert published > 100
    print(f"{published} events at full rate; 4 clients each resumed thrice on another node")


async def test_one_idempotency_key_sent_to_two_nodes_at_once_publishes_once(
    nodes: list[RunningServer],
) -> None:
    async with (
        PusherSocket(f"ws://127.0.0.1:{nodes[0].port}", nodes[0].key) as sock,
        rest(nodes[1]) as one,
        rest(nodes[2]) as two,
    ):
        await sock.subscribe("chat-orders")
        for n in range(20):
            key = f"order-{n}"
            answers = await asyncio.gather(
                one.trigger(
                    "chat-orders", "message", {"n": n}, idempotency_key=key, info=["serial"]
                ),
                two.trigger(
                    "chat-orders", "message", {"n": n}, idempotency_key=key, info=["serial"]
                ),
            )
            assert answers[0] == answers[1]
        got = await messages(sock, 20, 10)
        assert numbers(got) == list(range(20))
        with pytest.raises(TimeoutError):
            await messages(sock, 1, 0.5)  # and nothing more
        page = await one.history("chat-orders")
        assert [e["data"] for e in page["events"]] == [f'{{"n":{n}}}' for n in range(20)]  # type: ignore[index,union-attr]
