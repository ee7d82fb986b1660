"""Every refused request is kept for the shell's logs, as the client was told (rule 5).

The client's answer is tested where each refusal is made; here only what the shell reads
back from `refusals()`.
"""

from __future__ import annotations

from ressonance.protocol.connection import Refused
from ressonance.protocol.errors import SubscriptionError

from .wire import T0, client_event, connect, make_app, signin, subscribe


def test_nothing_refused_nothing_kept() -> None:
    conn = connect()
    conn.receive(subscribe("news"), T0)

    assert conn.refusals() == []


def test_each_kind_of_request_is_named_with_its_code_and_reason() -> None:
    conn = connect(make_app(enable_client_messages=False))
    conn.receive("not json", T0)
    conn.receive(subscribe("private-orders", auth="key:bad"), T0)
    conn.receive(signin('{"id":"7"}', auth="key:bad"), T0)
    conn.receive(client_event("private-orders"), T0)
    conn.receive(subscribe("news"), T0)
    conn.receive(subscribe("news"), T0)  # twice: a protocol error of a subscribe

    kept = conn.refusals()

    assert [(r.request, r.channel, r.code) for r in kept] == [
        ("message", None, None),
        ("subscribe", "private-orders", 401),
        ("signin", None, 4009),
        ("client_event", "private-orders", 4301),
        ("subscribe", "news", None),
    ]
    assert kept[0].reason == "Invalid JSON: the message could not be parsed"
    assert kept[1].reason.startswith("Invalid signature: expected HMAC SHA256 hex digest of ")
    assert kept[3].reason == "Client events are not enabled for this app (enable_client_messages)"
    assert conn.refusals() == []  # read once


def test_a_refusal_by_the_node_and_a_flood_are_kept_too() -> None:
    conn = connect(make_app(max_inbound_messages_per_sec=1, max_channels_per_connection=1))
    conn.subscription_refused(SubscriptionError("presence-room", "LimitReached", "full", 4100))
    for _ in range(5):
        conn.receive('{"event":"pusher:ping"}', T0)

    assert conn.refusals() == [
        Refused("subscribe", "presence-room", 4100, "full"),
        Refused(
            "message",
            None,
            4301,
            "Rate limit exceeded: more than 1 messages per second "
            "(max_inbound_messages_per_sec); messages are being dropped",
        ),
    ]
