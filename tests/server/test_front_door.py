"""The front door: what a client sees when its request is answered without aiohttp.

A fake transport records every write; the door runs over a memory node, the real HTTP API, the
real gate and the real WebSocket sockets. Requests the door does not answer must reach the
fallback protocol with every byte, before the door wrote anything of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpRequestParser
from hypothesis import given, settings, strategies as st

from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.handshake import Handshake
from ressonance.protocol.request_head import Verdict
from ressonance.protocol.signing import sign_request
from ressonance.server import front_door, routes
from ressonance.server.deadlines import LINGER_SECONDS, Phase, ticks
from ressonance.server.front_door import FrontDoor, FrontDoors, read_request
from ressonance.server.http_api import ApiRequest, ApiResponse
from ressonance.server.limits import ConnectionLimits
from ressonance.server.node import Node
from ressonance.server.service import gate, http_api, memory_node, sockets
from ressonance.server.websocket import WebSocket
from tests.fakes import decode_text_frame, split_frames
from tests.frames import PING, client_frame

APP = App(id="1", key="app-key", secret="app-secret", name="test")
SERVER = "Python/3.11 aiohttp/3.14.5"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class FakeTransport:
    """What the door and the WebSocket call on a transport, recorded."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.protocol: Any = None
        self.closed = False
        self.paused = False
        self.eof_written = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "wrote after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("203.0.113.9", 50000) if name == "peername" else None

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    @property
    def output(self) -> bytes:
        return b"".join(self.writes)


class NoHalfClose(FakeTransport):
    """A TLS transport: it cannot send EOF and keep reading."""

    def can_write_eof(self) -> bool:
        return False


class Fallback:
    """Stands for aiohttp's RequestHandler: records what it was given."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.received = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data


class Harness:
    def __init__(
        self, node: Node, limits: ConnectionLimits | None = None, capacity: int | None = None
    ) -> None:
        self.node = node
        self.fallbacks: list[Fallback] = []
        self.sockets = sockets(node, 1 << 16)
        self.api = http_api(node)
        self.doors = FrontDoors(
            loop=asyncio.get_running_loop(),
            api=self.api,
            sockets=self.sockets,
            gate=gate(node),
            metrics=node.metrics,
            fallback=self.fallback,
            max_body_bytes=1000,
            server_header=SERVER,
            limits=limits,
            capacity=capacity,
        )

    def fallback(self) -> Fallback:
        self.fallbacks.append(Fallback())
        return self.fallbacks[-1]

    def connect(self, transport: FakeTransport | None = None) -> tuple[FrontDoor, FakeTransport]:
        door = self.doors()
        transport = transport or FakeTransport()
        door.connection_made(transport)  # type: ignore[arg-type]
        return door, transport

    def sweep(self, count: int) -> None:
        for _ in range(count):
            self.doors.sweep()


@pytest.fixture
async def harness() -> Harness:
    node = memory_node([APP])
    await node.start()
    return Harness(node)


async def settle() -> None:
    """Let every request and upgrade in hand be answered (each takes a few loop turns)."""
    for _ in range(100):
        await asyncio.sleep(0)


def publish(body: Any = None, path: str = "/apps/1/events", **headers: str) -> bytes:
    """A signed publish, as the SDKs send it."""
    raw = json.dumps(body if body is not None else {"name": "e", "channel": "c", "data": "d"})
    params = {
        "auth_key": APP.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(raw.encode()).hexdigest(),
    }
    params["auth_signature"] = sign_request(APP.secret, "POST", path, params)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    lines = [f"POST {path}?{query} HTTP/1.1", "Host: localhost"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(raw)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + raw).encode()


def upgrade(key: str = APP.key) -> bytes:
    return (
        f"GET /app/{key}?protocol=7&client=js HTTP/1.1\r\nHost: localhost\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def responses(output: bytes) -> list[tuple[str, dict[str, str], Any]]:
    """(status line, headers, JSON body) of each HTTP response in `output`."""
    answers = []
    while output:
        head, _, rest = output.partition(b"\r\n\r\n")
        status, *lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        length = int(headers["Content-Length"])
        answers.append((status, headers, json.loads(rest[:length])))
        output = rest[length:]
    return answers


async def test_a_publish_is_answered_as_aiohttp_answers_it(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(publish())
    await settle()
    (status, headers, body), *more = responses(transport.output)
    assert not more
    assert status == "HTTP/1.1 200 OK"
    assert list(headers) == ["Content-Type", "Content-Length", "Date", "Server"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Server"] == SERVER
    assert body == {}
    assert harness.node.metrics.http_requests == {("events", "200"): 1}
    assert not transport.closed  # kept alive for the next request


async def test_the_idempotency_key_header_reaches_the_api(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(publish(Idempotency_Key="order-1"))
    await settle()
    door.data_received(publish(Idempotency_Key="order-1"))
    await settle()

    first, second = responses(transport.output)

    assert first[0] == second[0] == "HTTP/1.1 200 OK"
    assert harness.node.metrics.app(APP.id).idempotent_replays == 1


async def test_errors_carry_the_api_json_body(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(publish().replace(b"auth_key=app-key", b"auth_key=nope"))
    door.data_received(publish({"name": "e", "channel": "bad name!", "data": "d"}))
    await settle()
    first, second = responses(transport.output)
    assert first[0] == "HTTP/1.1 401 Unauthorized"
    assert first[2] == {"error": "Unknown auth_key", "code": 401}
    assert second[0] == "HTTP/1.1 400 Bad Request"
    assert second[2]["code"] == 400
    assert harness.node.metrics.http_requests == {("events", "401"): 1, ("events", "400"): 1}


async def test_pipelined_and_split_requests_are_answered_in_order(harness: Harness) -> None:
    door, transport = harness.connect()
    batch = publish({"batch": [{"name": "e", "channel": "c", "data": "d"}]}, "/apps/1/batch_events")
    wire = publish() + batch + publish()
    for index in range(len(wire)):  # one byte at a time
        door.data_received(wire[index : index + 1])
        await asyncio.sleep(0)
    door.data_received(wire + wire)  # everything at once
    await settle()
    assert [status for status, _, _ in responses(transport.output)] == ["HTTP/1.1 200 OK"] * 9
    assert harness.node.metrics.http_requests == {("events", "200"): 6, ("batch_events", "200"): 3}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        b"POST /apps/1/events HTTP/1.1\r\nContent-Length: 1001\r\n\r\n",
        b"GET /app/app-key HTTP/1.1\r\nHost: x\r\n\r\n",  # no upgrade headers: aiohttp's 400
        # Paths the door does not answer, and methods it does not answer there.
        upgrade(""),
        upgrade("k/extra"),
        upgrade().replace(b"GET /app/", b"GET /apps/"),
        publish(path="/apps/1/channels"),
        publish(path="/apps//events"),
        publish(path="/apps/1/events/x"),
        publish(path="/app/1/events"),
        publish(path="/users/u/terminate_connections"),
        b"GET /apps/1/events HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /app/app-key HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"\x16\x03\x01 not http at all\r\n\r\n",
    ],
)
async def test_what_the_door_does_not_answer_goes_to_aiohttp_whole(
    harness: Harness, request_bytes: bytes
) -> None:
    door, transport = harness.connect()
    door.data_received(request_bytes[:5])
    door.data_received(request_bytes[5:] + b"next")
    (fallback,) = harness.fallbacks
    assert transport.protocol is fallback
    assert fallback.transport is transport
    assert fallback.received == request_bytes + b"next"
    assert transport.writes == []
    assert door not in harness.doors.open


async def test_aiohttp_takes_over_after_answered_requests(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(publish() + b"GET /healthz HTTP/1.1\r\n\r\n")
    await settle()
    assert len(responses(transport.output)) == 1
    (fallback,) = harness.fallbacks
    assert fallback.received == b"GET /healthz HTTP/1.1\r\n\r\n"


async def test_an_upgrade_and_the_first_frames_leave_in_one_write(harness: Harness) -> None:
    door, transport = harness.connect()
    ping = client_frame(PING)  # a masked, empty ping right behind
    door.data_received(upgrade() + ping)
    await settle()
    (write,) = transport.writes
    head, _, frames = write.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[:4] == [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: upgrade",
        f"Sec-WebSocket-Accept: {ACCEPT}",
    ]
    assert lines[4].startswith("Date: ")
    assert lines[5] == f"Server: {SERVER}"
    pong, established = split_frames(frames)
    assert pong == b"\x8a\x00"
    assert decode_text_frame(established)["event"] == "pusher:connection_established"
    assert isinstance(transport.protocol, WebSocket)
    assert door not in harness.doors.open
    assert len(harness.node.registry.sessions) == 1


async def test_a_refused_upgrade_says_why_after_the_101(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(upgrade("unknown"))
    await settle()
    (write,) = transport.writes
    error, close = split_frames(write.partition(b"\r\n\r\n")[2])
    assert decode_text_frame(error) == {
        "event": "pusher:error",
        "data": {"code": 4001, "message": "App key does not exist"},
    }
    assert harness.node.metrics.refused == {"4001": 1}
    assert close[0] == 0x88
    assert int.from_bytes(close[2:4], "big") == 4001


async def test_the_session_can_write_after_uncork(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(upgrade())
    await settle()
    (socket,) = harness.sockets.open
    socket.write(b"\x81\x00")
    assert transport.writes[-1] == b"\x81\x00"


async def test_a_busy_door_pauses_a_client_that_sends_too_much(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(front_door, "MAX_WAITING_BYTES", 1000)
    released = asyncio.Event()
    handle = harness.api.handle

    async def slow(request: ApiRequest) -> ApiResponse:
        await released.wait()
        return await handle(request)

    harness.doors.api.handle = slow  # type: ignore[method-assign]
    door, transport = harness.connect()
    door.data_received(publish())
    await settle()
    waiting = publish() * (1000 // len(publish()) + 1)
    door.data_received(waiting)
    assert transport.paused
    released.set()
    await settle()
    assert not transport.paused
    await settle()
    await settle()
    assert len(responses(transport.output)) == 1 + waiting.count(b"POST ")


async def test_close_waits_for_the_answer_in_progress(harness: Harness) -> None:
    released = asyncio.Event()
    handle = harness.api.handle

    async def slow(request: ApiRequest) -> ApiResponse:
        await released.wait()
        return await handle(request)

    harness.doors.api.handle = slow  # type: ignore[method-assign]
    busy, busy_transport = harness.connect()
    _idle, idle_transport = harness.connect()
    busy.data_received(publish() + publish())
    await settle()
    harness.doors.close()
    assert idle_transport.closed
    assert not busy_transport.closed
    released.set()
    await harness.doors.wait_idle()
    assert busy_transport.closed
    assert len(responses(busy_transport.output)) == 1  # the next request is not started


async def test_a_failing_handler_closes_the_connection(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: ApiRequest) -> ApiResponse:
        raise RuntimeError("bug")

    harness.doors.api.handle = broken  # type: ignore[method-assign]
    door, transport = harness.connect()
    door.data_received(publish())
    await settle()
    assert transport.closed
    assert transport.writes == []
    assert "event=front_door_failed" in caplog.text


async def test_idle_doors_are_closed_by_the_sweep(harness: Harness) -> None:
    _idle, idle_transport = harness.connect()
    active, active_transport = harness.connect()
    active.data_received(publish())
    await settle()
    for _ in range(ticks(ConnectionLimits().first_byte_timeout)):
        harness.doors.sweep()
    assert idle_transport.closed  # never sent a byte
    assert not active_transport.closed  # answered, and idle for less than the keep-alive
    for _ in range(ticks(ConnectionLimits().keepalive_timeout)):
        harness.doors.sweep()
    assert active_transport.closed
    assert harness.node.metrics.dropped == {"first_byte_timeout": 1, "keepalive_timeout": 1}


async def test_a_head_over_the_limit_is_answered_431_and_never_buffered(
    harness: Harness,
) -> None:
    door, transport = harness.connect()
    door.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 10_000)
    ((status, headers, body),) = responses(transport.output)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert headers["Connection"] == "close"
    assert body == {"error": "Request line or header line is longer than 8 KB", "code": 431}
    assert transport.eof_written
    assert not harness.fallbacks  # aiohttp never sees it
    door.data_received(b"c" * 100_000)  # what the client still sends is dropped
    assert door.pending_bytes() == 0
    harness.sweep(ticks(LINGER_SECONDS) - 1)
    assert not transport.closed  # the client may still read the answer
    harness.sweep(1)
    assert transport.closed
    assert harness.node.metrics.dropped == {"head_too_large": 1}


async def test_over_tls_a_refusal_closes_at_once(harness: Harness) -> None:
    door, transport = harness.connect(NoHalfClose())
    door.data_received(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
    ((status, _, body),) = responses(transport.output)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert body["error"] == "Request has more than 128 header lines"
    assert transport.closed


async def test_a_trickled_request_gets_408_in_seconds(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(b"POST /apps/1/events HTTP/1.1\r\n")
    harness.sweep(1)
    assert transport.writes == []
    harness.sweep(1)  # its second tick: under 100 bytes a second
    ((status, _, body),) = responses(transport.output)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert body["error"] == "Request arriving too slowly (min_request_bytes_per_sec)"
    assert harness.node.metrics.dropped == {"request_too_slow": 1}


async def test_a_request_must_be_complete_within_the_request_timeout() -> None:
    node = memory_node([APP])
    limits = ConnectionLimits(request_timeout=3, min_request_bytes_per_sec=UNLIMITED)
    harness = Harness(node, limits)
    door, transport = harness.connect()
    head = publish()
    door.data_received(head[:-2])  # the body is 2 bytes short
    harness.sweep(ticks(3) - 1)
    assert transport.writes == []
    harness.sweep(1)
    ((status, _, body),) = responses(transport.output)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert body["error"] == "Request not received in time (request_timeout)"
    harness.sweep(ticks(LINGER_SECONDS))
    assert transport.closed
    door.expire(Phase.KEEPALIVE)  # closed already: nothing more
    assert harness.node.metrics.dropped == {"request_timeout": 1}


async def test_a_request_being_answered_is_never_cut(harness: Harness) -> None:
    released = asyncio.Event()
    handle = harness.api.handle

    async def slow(request: ApiRequest) -> ApiResponse:
        await released.wait()
        return await handle(request)

    harness.doors.api.handle = slow  # type: ignore[method-assign]
    door, transport = harness.connect()
    door.data_received(publish())
    await settle()
    harness.sweep(ticks(ConnectionLimits().request_timeout) + 1)
    assert not transport.closed
    released.set()
    await settle()
    ((status, _, _),) = responses(transport.output)
    assert status == "HTTP/1.1 200 OK"
    harness.sweep(ticks(ConnectionLimits().keepalive_timeout))
    assert transport.closed  # then idle


async def test_past_the_capacity_only_probes_are_served() -> None:
    harness = Harness(memory_node([APP]), capacity=0)
    probe, _ = harness.connect()
    assert probe.probes_only
    probe.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    (fallback,) = harness.fallbacks
    assert fallback.received.startswith(b"GET /healthz")
    other, transport = harness.connect()
    other.data_received(publish())
    ((status, _, body),) = responses(transport.output)
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert body["error"].startswith("Server over capacity: only /healthz, /readyz and /metrics")
    assert harness.node.metrics.dropped == {"over_capacity": 1}


async def test_a_lost_connection_is_forgotten(harness: Harness) -> None:
    door, _transport = harness.connect()
    door.data_received(b"POST /apps/1/ev")
    door.connection_lost(None)
    assert door not in harness.doors.open
    assert door.eof_received() is None


async def test_an_answer_to_a_connection_lost_meanwhile_is_dropped(harness: Harness) -> None:
    door, transport = harness.connect()
    door.data_received(publish())
    transport.closed = True
    door.connection_lost(None)
    await settle()
    assert transport.writes == []


# --- the door reads what aiohttp reads ------------------------------------------------------

_TOKEN = st.text("abcxyzABC0189-_.~", min_size=1, max_size=8)
_VALUE = st.text("abz AZ09-_.~=&/:;,+%\t\x7f\xe9", max_size=12)
_HEADER_NAMES = st.sampled_from(
    [
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Origin",
        "X-Forwarded-For",
        "Content-Length",
        "Transfer-Encoding",
        "Content-Encoding",
        "Expect",
        "X-Thing",
        "Bad Name",
        "",
    ]
)
_HEADER_VALUES = st.one_of(
    _VALUE,
    st.sampled_from(["websocket", "Upgrade", "keep-alive, upgrade", "close", KEY, "13", "8"]),
    st.sampled_from(["0", "2", "10", "007", " 2 ", "-1", "2, 2", "chunked", "100-continue"]),
)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """Mostly requests the door answers, with extra headers, spellings and query strings."""
    if draw(st.booleans()):
        method, path = "GET", "/app/" + draw(_TOKEN)
        headers = [
            ("Upgrade", draw(st.sampled_from(["websocket", "WebSocket", "h2c"]))),
            ("Connection", draw(st.sampled_from(["Upgrade", "keep-alive, Upgrade", "close"]))),
            ("Sec-WebSocket-Key", draw(st.sampled_from([KEY, KEY[:-1], "x"]))),
            ("Sec-WebSocket-Version", draw(st.sampled_from(["13", "8", "7", "6"]))),
        ]
    else:
        endpoint = draw(st.sampled_from(["/events", "/batch_events", "/channels"]))
        method, path = "POST", "/apps/" + draw(_TOKEN) + endpoint
        headers = [("Content-Length", draw(st.sampled_from(["0", "2", "10", "007", "x"])))]
    if draw(st.integers(0, 9)):
        headers.append(("Host", draw(st.sampled_from(["localhost:6001", "x", "a b", ""]))))
    headers += draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=3))
    headers = draw(st.permutations(headers))
    names = [draw(st.sampled_from([n, n.lower(), n.upper()])) for n, _ in headers]
    separator = draw(st.sampled_from([": ", ":", ":\t", " : "]))
    query = draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=4))
    target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    version = draw(st.sampled_from(["HTTP/1.1"] * 5 + ["HTTP/1.0"]))
    lines = [f"{method} {target} {version}"]
    lines += [f"{name}{separator}{value}" for name, (_, value) in zip(names, headers, strict=True)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def aiohttp_reads(wire: bytes) -> list[tuple[Any, bytes]]:
    """The messages (and bodies) aiohttp's own request parser reads from `wire`."""
    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(BaseProtocol(loop), loop, 2**16)
        messages, _, _ = parser.feed_data(wire)
        return [(message, list(getattr(payload, "_buffer", ()))) for message, payload in messages]
    finally:
        loop.close()


def test_the_door_answers_upgrades_and_publishes_at_their_routes() -> None:
    head, route, handshake = answerable(upgrade())
    assert route.endpoint is routes.WEBSOCKET
    assert handshake == Handshake(APP.key, {"protocol": "7", "client": "js"}, None, ())
    for path, endpoint in [
        ("/apps/1/events", routes.EVENTS),
        ("/apps/1/batch_events", routes.BATCH_EVENTS),
    ]:
        wire = publish(path=path)
        head, route, length = answerable(wire)
        assert (head.method, head.path, route.endpoint) == ("POST", path, endpoint)
        assert route.params == {"app_id": "1"}
        assert head.size + length == len(wire)


def answerable(wire: bytes) -> front_door.Answerable:
    request = read_request(wire, 1000)
    assert not isinstance(request, Verdict), request
    return request


@settings(max_examples=400, deadline=None)
@given(heads(), st.binary(max_size=12))
def test_whatever_the_door_answers_aiohttp_reads_the_same_way(head: bytes, rest: bytes) -> None:
    request = read_request(head + rest, 1000)
    if isinstance(request, Verdict):
        return  # not ours: aiohttp reads it, whatever it is
    read, _, answer = request
    assert read.size == len(head)
    body_bytes = 0 if isinstance(answer, Handshake) else answer
    body = rest[:body_bytes]
    if len(body) < body_bytes:
        body += b"x" * (body_bytes - len(body))
    ((message, payload),) = aiohttp_reads(head + body)
    assert b"".join(payload) == body
    assert dict(message.url.query) == read.query
    if isinstance(answer, int):
        assert (message.method, message.path) == ("POST", read.path + _query_of(head))
        assert message.url.path == read.path
        assert not message.upgrade
    else:
        assert message.method == "GET"
        assert message.url.path == f"/app/{answer.key}"
        assert message.upgrade
        assert message.headers.get("Origin") == answer.origin
        assert tuple(message.headers.getall("X-Forwarded-For", ())) == answer.forwarded_for


def _query_of(head: bytes) -> str:
    target = head.split(b" ", 2)[1].decode()
    return target[len(target.partition("?")[0]) :]
