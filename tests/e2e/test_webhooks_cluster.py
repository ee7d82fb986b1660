"""Webhooks of three nodes over a real Redis (valkey): the cluster sends them as one server.

Subscribers and members spread over the nodes make one channel_occupied and one
channel_vacated per channel and one member_added and member_removed per user; a node killed
with SIGKILL has its members' member_removed sent by the survivors; the lane a dead node
was sending is taken over, and its pending events delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ressonance.client import PusherSocket, authorize_channel
from ressonance.protocol.webhooks import parse_endpoints
from tests import services
from tests.e2e.conftest import RunningServer, connected, start_server, stop_server
from tests.webhook_receiver import ReceiverThread

pytestmark = pytest.mark.e2e

NODE_TTL = 3.0
LEAVE_DELAY = 0.5
# A dead node's members go within node_ttl + one liveness interval; their webhooks then wait
# the leave delay and a batch; generous slack for a loaded machine.
REAP_BOUND = NODE_TTL + NODE_TTL / 3 + LEAVE_DELAY + 10
LIFECYCLE = ["channel_occupied", "channel_vacated", "member_added", "member_removed"]


@dataclass
class Cluster:
    nodes: list[RunningServer]
    redis: services.ServerProcess
    receiver: ReceiverThread

    def socket(self, index: int, user: str | None = None) -> PusherSocket:
        node = self.nodes[index]

        async def authorize(socket_id: str, channel: str) -> dict[str, str]:
            presence = None
            if channel.startswith("presence-"):
                presence = {"user_id": user, "user_info": {}}
            return authorize_channel(node.key, node.secret, socket_id, channel, presence=presence)

        return PusherSocket([f"ws://{node.host}:{node.port}"], node.key, authorizer=authorize)

    def node_id(self, index: int) -> str:
        found = re.search(r"event=listening .*node_id=([0-9a-f]+)", self.nodes[index].log())
        assert found, self.nodes[index].log()
        return found.group(1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    receiver = ReceiverThread()
    receiver.start()
    with contextlib.ExitStack() as stack:
        stack.callback(receiver.close)
        redis = stack.enter_context(services.running(services.valkey(tmp_path / "valkey")))
        config = tmp_path / "cluster.toml"
        config.write_text(
            f'[server]\nbackbone = "{redis.url}"\nstate = "{redis.url}"\n'
            f"node_ttl = {NODE_TTL}\ndrain_seconds = 1\nwebhook_leave_delay = {LEAVE_DELAY}\n"
            "webhook_batch_wait = 0.05\nwebhook_retry_initial = 0.2\nwebhook_retry_max = 1\n"
        )
        endpoints = [{"url": receiver.url, "event_types": LIFECYCLE}]
        env = {"RESSONANCE_APP_WEBHOOKS": json.dumps(endpoints)}
        nodes: list[RunningServer] = []
        try:
            for _ in range(3):
                nodes.append(start_server(tmp_path, extra_env=env, args=["--config", str(config)]))
            yield Cluster(nodes, redis, receiver)
        finally:
            for node in nodes:
                stop_server(node)


def lifecycle(receiver: ReceiverThread) -> list[tuple[str, str, Any]]:
    return [(e["name"], e["channel"], e.get("user_id")) for e in receiver.delivered()]


async def test_spread_subscribers_and_members_make_one_event_each(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    receiver = cluster.receiver
    readers = [await connected(sockets, cluster.socket(i)) for i in range(3)]
    for reader in readers:
        await reader.subscribe("news")
    tabs = [
        await connected(sockets, cluster.socket(0, "alice")),
        await connected(sockets, cluster.socket(1, "alice")),  # a second tab, another node
        await connected(sockets, cluster.socket(2, "bob")),
    ]
    for tab in tabs:
        await tab.subscribe("presence-room")
    await receiver.until(lambda: len(lifecycle(receiver)) == 4, "occupied x2, added x2")
    for sock in readers + tabs:
        await sock.close()
    await receiver.until(lambda: len(lifecycle(receiver)) == 8, "removed x2, vacated x2")
    await asyncio.sleep(2 * LEAVE_DELAY + 1)  # nothing more comes

    events = lifecycle(receiver)
    assert sorted(events) == sorted(
        [
            ("channel_occupied", "news", None),
            ("channel_vacated", "news", None),
            ("channel_occupied", "presence-room", None),
            ("member_added", "presence-room", "alice"),
            ("member_added", "presence-room", "bob"),
            ("member_removed", "presence-room", "alice"),
            ("member_removed", "presence-room", "bob"),
            ("channel_vacated", "presence-room", None),
        ]
    )
    room = [name for name, channel, _ in events if channel == "presence-room"]
    assert room[0] == "channel_occupied"
    assert room[-1] == "channel_vacated"


async def test_a_killed_nodes_members_are_removed_by_the_survivors(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    receiver = cluster.receiver
    alice = await connected(sockets, cluster.socket(0, "alice"))
    await alice.subscribe("presence-room")
    bob = await connected(sockets, cluster.socket(2, "bob"))
    await bob.subscribe("presence-room")
    await receiver.until(lambda: len(lifecycle(receiver)) == 3, "occupied, two members")

    os.kill(cluster.nodes[2].process.pid, signal.SIGKILL)
    await receiver.until(
        lambda: ("member_removed", "presence-room", "bob") in lifecycle(receiver),
        "bob's member_removed after his node died",
        REAP_BOUND,
    )
    await asyncio.sleep(1)

    assert lifecycle(receiver).count(("member_removed", "presence-room", "bob")) == 1
    assert ("member_removed", "presence-room", "alice") not in lifecycle(receiver)
    assert ("channel_vacated", "presence-room", None) not in lifecycle(receiver)


async def test_the_lane_of_a_killed_sender_is_taken_over(
    cluster: Cluster, sockets: list[PusherSocket]
) -> None:
    receiver = cluster.receiver
    receiver.stop()  # down: events pile up in the lane, its sender retrying
    sock = await connected(sockets, cluster.socket(0))
    for n in range(5):
        await sock.subscribe(f"room-{n}")
    node = cluster.nodes[0]
    (endpoint,) = parse_endpoints([{"url": receiver.url, "event_types": LIFECYCLE}])
    lease = f"ressonance:wh:lease:{node.app_id}:{endpoint.id}"
    redis = Redis.from_url(cluster.redis.url)
    try:
        owner = None
        for _ in range(200):
            owner = await redis.get(lease)
            if owner:
                break
            await asyncio.sleep(0.05)
        assert owner, "no node took the lane"
    finally:
        await redis.aclose()
    sender = [cluster.node_id(i) for i in range(3)].index(owner.decode())

    os.kill(cluster.nodes[sender].process.pid, signal.SIGKILL)
    receiver.start()
    await receiver.until(
        lambda: {c for n, c, _ in lifecycle(receiver)} >= {f"room-{n}" for n in range(5)},
        "the dead sender's events, from another node",
        REAP_BOUND,
    )
