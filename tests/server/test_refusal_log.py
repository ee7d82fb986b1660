"""Refusals logged at INFO (app, reason), bounded per kind and code; debug lines per event.

An operator reads these to learn why a client does not work: each refusal a client can meet
(unknown key, bad signature, Origin, quotas, admission) is one line with the app id and the
reason it was sent, a flood of them is a few lines and a count, and no secret is ever in one.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from ressonance.protocol.handshake import Handshake
from ressonance.server.admission import AdmissionLimits
from ressonance.server.node import Node
from ressonance.server.refusal_log import MAX_VALUE, RefusalLog, quoted
from ressonance.server.service import http_api
from tests.fakes import FakeClock
from tests.server.clients import Client
from tests.server.conftest import APP, Connect, MakeNode
from tests.server.test_gate import PUSHER_JS, opened
from tests.server.test_http_api import signed

LOGGER = "ressonance"


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={event}")]


@pytest.fixture(autouse=True)
def info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)


# --- the bound ------------------------------------------------------------------------------


def test_a_flood_of_one_refusal_is_ten_lines_then_one_count(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    refusals = RefusalLog(clock)
    for _ in range(1000):
        refusals.refused("connection", 4001, None, "App key does not exist", key="'k'")
    refusals.refused("api", 401, "1", "Invalid signature")  # another kind: its own window

    assert len(lines(caplog, "refused kind=connection")) == 10
    assert len(lines(caplog, "refused kind=api")) == 1
    refusals.flush()  # the window is not over yet
    assert lines(caplog, "refusals_suppressed") == []

    clock.advance(10.0)
    refusals.flush()

    assert lines(caplog, "refusals_suppressed") == [
        "event=refusals_suppressed kind=connection code=4001 suppressed=990 window_s=10"
    ]
    refusals.flush()  # reported once
    assert len(lines(caplog, "refusals_suppressed")) == 1


def test_the_next_refusal_after_the_window_reports_the_count_and_is_logged(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    refusals = RefusalLog(clock, lines=1)
    for _ in range(3):
        refusals.refused("api", 429, "1", "Too many requests")
    clock.advance(10.0)

    refusals.refused("api", 429, "1", "Too many requests")

    assert [line.split(" reason=")[0] for line in lines(caplog, "refus")] == [
        "event=refused kind=api code=429 app_id=1",
        "event=refusals_suppressed kind=api code=429 suppressed=2 window_s=10",
        "event=refused kind=api code=429 app_id=1",
    ]


def test_a_clients_value_stays_on_one_bounded_line(clock: FakeClock) -> None:
    assert quoted("a\nb") == "'a\\nb'"
    assert len(quoted("x" * 10_000)) == MAX_VALUE + len("''...")


def test_nothing_is_formatted_when_info_is_off(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    refusals = RefusalLog(clock)
    refusals.refused("api", 401, "1", "Invalid signature")
    assert caplog.records == []
    assert refusals._windows == {}


# --- who logs what ----------------------------------------------------------------------------


async def test_an_unknown_key_is_logged_with_the_key_and_the_address(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    gate, socket = opened(node)
    await gate.open(socket, dataclasses.replace(PUSHER_JS, key="wrong\nkey"))

    assert lines(caplog, "refused") == [
        "event=refused kind=connection code=4001 app_id=- address=203.0.113.9 key='wrong\\nkey' "
        "reason='App key does not exist'"
    ]


async def test_an_origin_and_admission_refusals_name_the_app(
    make_node: MakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    node = await make_node(dataclasses.replace(APP, allowed_origins=("app.example.com",)))
    gate, socket = opened(node)
    await gate.open(socket, dataclasses.replace(PUSHER_JS, origin="https://evil.example"))
    full, other = opened(node, AdmissionLimits(max_node_connections=0))
    await full.open(other, dataclasses.replace(PUSHER_JS, origin="https://app.example.com"))

    origin, admission = lines(caplog, "refused")
    assert origin == (
        "event=refused kind=connection code=4009 app_id=1 address=203.0.113.9 "
        "origin='https://evil.example' reason='Origin not allowed'"
    )
    assert admission.startswith("event=refused kind=connection code=4100 app_id=1 ")
    assert "(max_node_connections)" in admission


async def test_a_bad_signature_on_the_http_api_is_a_401_line_without_the_secret(
    node: Node, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    api = http_api(node)
    request = signed(clock, "POST", "/apps/1/events", {"name": "e", "channels": ["c"], "data": ""})
    forged = dataclasses.replace(request, query={**request.query, "auth_signature": "0" * 64})

    assert (await api.handle(forged)).status == 401
    assert (await api.handle(request)).status == 200

    (line,) = lines(caplog, "refused")
    assert line.startswith(
        "event=refused kind=api code=401 app_id=1 method='POST' endpoint=events "
        "reason=\"Invalid signature: you should have sent HmacSHA256Hex('POST"
    )
    assert APP.secret not in caplog.text
    assert "0" * 64 not in caplog.text  # not the signature either


async def test_subscription_and_client_event_refusals_are_logged(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect()
    await client.subscribe("private-orders", auth=f"{APP.key}:{'0' * 64}")
    await client.trigger("private-orders", "client-typing", {})  # not subscribed

    signature, client_event = lines(caplog, "refused")
    assert signature.startswith(
        f"event=refused kind=subscribe code=401 app_id=1 socket_id={client.socket_id} "
        "channel='private-orders' reason='Invalid signature: expected HMAC SHA256 hex digest of "
    )
    assert client_event.startswith("event=refused kind=client_event code=4301 app_id=1 ")
    assert APP.secret not in caplog.text


async def test_a_client_event_over_its_rate_is_logged(
    make_node: MakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    app = dataclasses.replace(APP, max_client_events_per_sec=1)
    node = await make_node(app)
    client = Client.connect(node, app)
    await client.subscribe("private-chat")
    for _ in range(3):
        await client.trigger("private-chat", "client-typing", {})

    first, second = lines(caplog, "refused")  # the rate is 1: the 2nd and 3rd are refused
    assert first == second
    assert first.endswith(
        "channel='private-chat' reason='Client event rejected due to rate limit "
        "(1 per second per connection)'"
    )


# --- debug ------------------------------------------------------------------------------------


async def test_debug_lines_follow_a_connection_from_open_to_close(
    node: Node, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    gate, socket = opened(node)
    await gate.open(socket, PUSHER_JS)
    (session,) = node.registry.sessions.values()
    socket_id = session.socket_id
    await node.receive(session, '{"event":"pusher:subscribe","data":{"channel":"news"}}')
    await node.receive(session, '{"event":"pusher:unsubscribe","data":{"channel":"news"}}')
    clock.advance(2.5)
    session.close(4200, "Server is restarting; reconnect")
    await node.registry.close_session(session)
    await http_api(node).handle(signed(clock, "GET", "/apps/1/channels"))

    assert [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG] == [
        f"event=connection_opened socket_id={socket_id} app_id=1 address=203.0.113.9",
        f"event=subscribed socket_id={socket_id} channel=news user_id=-",
        f"event=unsubscribed socket_id={socket_id} channel=news",
        f"event=connection_closed socket_id={socket_id} app_id=1 code=4200 "
        "reason='Server is restarting; reconnect' duration_s=2.5",
        "event=api_call method='GET' endpoint=channels app_id=1 status=200",
    ]


@pytest.mark.parametrize(
    ("client_code", "reason"),
    [
        (1000, "code=1000 reason='closed by the client'"),
        (None, "code=None reason='connection lost'"),
    ],
)
async def test_a_close_by_the_client_or_the_network_says_so(
    connect: Connect,
    node: Node,
    caplog: pytest.LogCaptureFixture,
    client_code: int | None,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    client = connect()
    await node.registry.close_session(client.session, client_code)

    (line,) = lines(caplog, "connection_closed")
    assert reason in line


async def test_the_gate_reports_suppressed_refusals_on_its_sweep(
    node: Node, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    gate, _ = opened(node)
    unknown = Handshake("nope", {"protocol": "7"}, None, ())
    for _ in range(12):
        _, socket = opened(node)
        await gate.open(socket, unknown)
    clock.advance(10.0)

    gate.sweep()

    assert len(lines(caplog, "refused")) == 10
    assert lines(caplog, "refusals_suppressed") == [
        "event=refusals_suppressed kind=connection code=4001 suppressed=2 window_s=10"
    ]
