"""Properties of a connection's Pusher state over generated client messages (§2, §4).

Whatever a client sends, `Connection.receive` returns, and every frame it queues is one a
client can parse: a JSON object with a server event, its `data` a JSON string or, for errors,
an object. The rules hold after every message: a channel that needs a signature is pending or
subscribed only after a validly signed pusher:subscribe, a user only after a validly signed
pusher:signin, and client events come only from subscribed private or presence channels of
apps that enable them. The test stands in for the node, accepting, refusing or leaving
pending each subscription as a node would.
"""

from __future__ import annotations

import json
from typing import Literal

from hypothesis import event as note, given, strategies as st

from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import ChannelKind, channel_name_problem, classify
from ressonance.protocol.connection import (
    ClientEventReceived,
    Connection,
    Event,
    Member,
    SignedIn,
    SubscribeRequested,
    Subscription,
    Unsubscribed,
    User,
)
from ressonance.protocol.errors import ErrorCode, SubscriptionError
from ressonance.protocol.frames import text_frame
from tests.fakes import decode_text_frame
from tests.strategies import (
    Intent,
    Pool,
    Signin,
    Subscribe,
    intents,
    joins,
    pools,
    render,
)

from .wire import SOCKET_ID, T0, connect, join, make_app

SERVER_EVENTS = {
    m.ERROR,
    m.PONG,
    m.SIGNIN_SUCCESS,
    m.SUBSCRIPTION_ERROR,
    m.SUBSCRIPTION_SUCCEEDED,
}
OBJECT_DATA = {m.ERROR, m.SUBSCRIPTION_ERROR}  # as Soketi sends and pusher-js reads (§2.1)

Decision = Literal["accept", "refuse", "wait"]
Step = tuple[Intent, bool, Decision]

apps = st.builds(
    make_app,
    enable_client_messages=st.sampled_from([True, True, True, False]),
    watchlist=st.booleans(),
    max_event_payload_in_kb=st.sampled_from([1, 10]),
    max_channel_name_length=st.sampled_from([50, 200]),
    max_watchlist_size=st.sampled_from([1, 100]),
)


@st.composite
def sessions(draw: st.DrawFn) -> list[Step]:
    """What one client sends: intents, each rendered with or without raw non-ASCII, and
    what the node decides about a subscription it asks for. Often it first signs in and
    joins channels, so that later messages have something to act on."""
    pool = draw(pools)
    opening = st.tuples(joins(pool), st.just(True), st.just("accept"))
    step = st.tuples(
        intents(pool),
        st.sampled_from([True, True, False]),
        st.sampled_from(["accept", "accept", "refuse", "wait"]),
    )
    return draw(st.lists(opening, max_size=6)) + draw(st.lists(step, min_size=1, max_size=10))


def received(conn: Connection) -> list[dict[str, object]]:
    """The messages queued, as a client decodes them from their WebSocket frames."""
    messages = []
    for payload in conn.data_to_send():
        message = decode_text_frame(text_frame(payload))
        assert message["event"] in SERVER_EVENTS, message
        data = message.get("data")
        if message["event"] in OBJECT_DATA:
            assert isinstance(data, dict), message
        else:
            assert isinstance(data, str), message  # a JSON string (§0.1)
            json.loads(data)
        messages.append(message)
    return messages


def node_answers(conn: Connection, event: SubscribeRequested, decision: Decision) -> None:
    """What a node does with a subscription: presence members get a roster."""
    name = event.channel.name
    if decision == "accept":
        roster = None
        if event.member is not None:
            roster = m.presence_roster({event.member.user_id: event.member.user_info})
        conn.subscription_succeeded(event.channel, event.member, roster)
    elif decision == "refuse":
        refusal = SubscriptionError(name, "LimitReached", "Full", ErrorCode.OVER_CAPACITY)
        conn.subscription_refused(refusal)


def check_subscribe(event: SubscribeRequested, intent: Intent, user: User | None) -> None:
    channel, member = event.channel, event.member
    if channel.needs_auth:
        assert isinstance(intent, Subscribe)
        assert intent.signed
    if channel.kind is ChannelKind.USER:
        assert user is not None
        assert user.id == channel.user_id
    if not channel.is_presence:
        assert member is None
    elif isinstance(intent, Subscribe) and intent.channel_data is not None:
        assert member is not None
        assert member.user_id == str(json.loads(intent.channel_data)["user_id"])
    else:
        assert user is not None
        assert member == Member(user.id, user.info)


def check_event(event: Event, intent: Intent, conn: Connection, before: dict[str, object]) -> None:
    match event:
        case SubscribeRequested():
            assert event.channel.name not in before
            assert event.channel.name in conn.pending
            check_subscribe(event, intent, conn.user)
        case SignedIn(user):
            assert isinstance(intent, Signin)
            assert intent.signed
            assert conn.user == user
            assert user.id == json.loads(intent.user_data)["id"]
        case ClientEventReceived(channel, name, payload):
            assert conn.app.enable_client_messages
            assert channel.accepts_client_events
            assert channel.name in conn.channels
            relayed = json.loads(payload)
            assert (relayed["event"], relayed["channel"]) == (name, channel.name)
        case Unsubscribed(channel, member):
            assert before[channel.name] == Subscription(channel, member)
            assert channel.name not in conn.channels


def check_state(conn: Connection, app: App, signed: set[str]) -> None:
    assert conn.pending.isdisjoint(conn.channels)
    for name in conn.pending | set(conn.channels):
        assert channel_name_problem(name, app.max_channel_name_length) is None
        channel = classify(name)
        if name in conn.channels:  # classified once, when requested
            assert conn.channels[name].channel == channel
        if channel.needs_auth:
            assert name in signed
        if channel.kind is ChannelKind.USER:
            assert conn.user is not None
            assert conn.user.id == channel.user_id


@given(apps, sessions())
def test_whatever_a_client_sends_is_answered_in_json_and_the_rules_hold(
    app: App, steps: list[Step]
) -> None:
    conn = connect(app)
    signed: set[str] = set()  # channels the client sent a valid signature for
    for intent, ascii_only, decision in steps:
        if isinstance(intent, Subscribe) and intent.signed:
            signed.add(intent.channel)
        before = dict(conn.channels)

        events = conn.receive(render(intent, app, SOCKET_ID, ascii_only), T0)

        for event in events:
            note(type(event).__name__)  # how far examples get: --hypothesis-show-statistics
            check_event(event, intent, conn, before)
            if isinstance(event, SubscribeRequested):
                node_answers(conn, event, decision)
        received(conn)
        check_state(conn, app, signed)


@st.composite
def client_events(draw: st.DrawFn) -> tuple[str, list[tuple[Intent, bool]]]:
    """A channel a client joins, and what it sends then: mostly client events on it."""
    channel = draw(st.sampled_from(["private-chat", "presence-room", "private-cache-c"]))
    step = st.tuples(intents(Pool([channel], ["7"])), st.booleans())
    return channel, draw(st.lists(step, min_size=1, max_size=8))


@given(client_events())
def test_client_events_of_a_subscribed_client_are_relayed_as_json_or_refused(
    session: tuple[str, list[tuple[Intent, bool]]],
) -> None:
    channel, steps = session
    conn = connect(make_app(enable_client_messages=True))
    member = '{"user_id":"7","user_info":{"name":"A"}}'
    join(conn, channel, member if classify(channel).is_presence else None)
    for intent, ascii_only in steps:
        before = dict(conn.channels)

        events = conn.receive(render(intent, conn.app, SOCKET_ID, ascii_only), T0)

        for event in events:
            note(type(event).__name__)
            check_event(event, intent, conn, before)
        received(conn)
