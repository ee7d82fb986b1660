"""Properties of a node fed generated client messages from several connections (§2).

Whatever the clients send, `Node.receive` returns without raising (the socket would close with
1011) and without answering "Temporarily unavailable" (over memory stores that would be a bug
caught and hidden); every frame any client reads is a JSON message; and once every client has
closed, nothing is left behind: no session, no hub topic, no presence member or online user.
"""

from __future__ import annotations

import asyncio
import dataclasses

from hypothesis import given, strategies as st

from ressonance.server.service import memory_node
from tests.fakes import FakeClock
from tests.server.clients import Client
from tests.server.conftest import APP
from tests.strategies import Intent, Pool, intents, joins, pools, render

CLIENTS = 3
APP_WITH_EVERYTHING = dataclasses.replace(
    APP, subscription_count=True, max_presence_members_per_channel=2
)

Step = tuple[int, Intent, bool]


@st.composite
def sessions(draw: st.DrawFn) -> tuple[Pool, list[Step]]:
    """What three clients send, interleaved; often they first sign in and join channels."""
    pool = draw(pools)
    clients = st.integers(0, CLIENTS - 1)
    opening = st.tuples(clients, joins(pool), st.just(True))
    step = st.tuples(clients, intents(pool), st.sampled_from([True, True, False]))
    return pool, draw(st.lists(opening, max_size=6)) + draw(st.lists(step, max_size=10))


async def run(pool: Pool, steps: list[Step]) -> None:
    node = memory_node([APP_WITH_EVERYTHING], clock=FakeClock())
    await node.start()
    clients = [Client.connect(node, APP_WITH_EVERYTHING) for _ in range(CLIENTS)]
    for index, intent, ascii_only in steps:
        client = clients[index]
        await node.receive(client.session, render(intent, client.app, client.socket_id, ascii_only))

    for client in clients:
        client.outlet.assert_open()
        for message in client.outlet.messages():  # each frame decoded as a client would
            assert "Temporarily unavailable" not in str(message.get("data")), message
        await client.close()

    assert node.registry.sessions == {}
    assert node.hub.topics() == 0
    assert await node.presence.channels(APP.id) == {}
    assert await node.presence.online(APP.id, pool.users) == set()
    await node.stop()


@given(sessions())
def test_whatever_clients_send_the_node_answers_and_forgets_them_when_they_close(
    session: tuple[Pool, list[Step]],
) -> None:
    asyncio.run(run(*session))
