"""The relay in front of the web library's protocol: what it passes on, and what it stops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ressonance.server import relay as relay_module
from ressonance.server.relay import Relay


class Inner(asyncio.Protocol):
    """Stands for aiohttp's RequestHandler: records every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append(("made", transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))

    def data_received(self, data: bytes) -> None:
        self.events.append(("data", data))

    def eof_received(self) -> bool | None:
        self.events.append(("eof", None))
        return None

    def pause_writing(self) -> None:
        self.events.append(("pause", None))

    def resume_writing(self) -> None:
        self.events.append(("resume", None))

    @property
    def received(self) -> bytes:
        return b"".join(data for event, data in self.events if event == "data")


class Transport:
    def __init__(self, half_close: bool = True) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.half_close = half_close

    def can_write_eof(self) -> bool:
        return self.half_close

    def write_eof(self) -> None:
        self.eof_written = True

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted


REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def dropped() -> list[str]:
    return []


@pytest.fixture
def relay(dropped: list[str]) -> tuple[Relay, Inner, Transport]:
    inner, transport = Inner(), Transport()
    relay = Relay(
        inner,
        max_head_bytes=100,
        refusal=lambda status, message: f"{status} {message}".encode(),
        dropped=dropped.append,
    )
    relay.connection_made(transport)  # type: ignore[arg-type]
    return relay, inner, transport


def test_every_event_is_passed_on(relay: tuple[Relay, Inner, Transport]) -> None:
    proxy, inner, transport = relay
    assert proxy.inner is inner
    proxy.data_received(REQUEST)
    proxy.pause_writing()
    proxy.resume_writing()
    assert proxy.eof_received() is None
    proxy.connection_lost(None)
    assert [event for event, _ in inner.events] == [
        "made",
        "data",
        "pause",
        "resume",
        "eof",
        "lost",
    ]
    assert inner.events[0][1] is transport


def test_heads_after_an_answer_may_arrive_in_pieces_up_to_the_limit(
    relay: tuple[Relay, Inner, Transport],
) -> None:
    proxy, inner, transport = relay
    proxy.data_received(REQUEST)
    proxy.request_done()
    second = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    for piece in (second[:50], second[50:-1], second[-1:]):  # the end straddles two pieces
        proxy.data_received(piece)
    proxy.data_received(b"body" * 100)  # after the head, a body: not followed
    assert inner.received == REQUEST + second + b"body" * 100
    assert not transport.is_closing()


async def test_a_head_over_the_limit_gets_431_and_never_reaches_the_library(
    relay: tuple[Relay, Inner, Transport], dropped: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "LINGER_SECONDS", 0.01)
    proxy, inner, transport = relay
    proxy.data_received(REQUEST)
    proxy.request_done()
    proxy.data_received(b"GET / HTTP/1.1\r\nX: " + b"a" * 50)
    proxy.data_received(b"a" * 50)
    assert transport.writes == [b"431 Request head is larger than 100 bytes"]
    assert transport.eof_written
    assert inner.received == REQUEST + b"GET / HTTP/1.1\r\nX: " + b"a" * 50
    proxy.data_received(b"more")  # refused: dropped while the client reads the answer
    assert inner.received.endswith(b"a" * 50)
    assert dropped == ["head_too_large"]
    assert not transport.closed
    await asyncio.sleep(0.05)
    assert transport.closed


async def test_over_tls_a_refused_head_closes_at_once(dropped: list[str]) -> None:
    transport = Transport(half_close=False)
    relay = Relay(
        Inner(),
        max_head_bytes=100,
        refusal=lambda status, message: b"refused",
        dropped=dropped.append,
    )
    relay.connection_made(transport)  # type: ignore[arg-type]
    relay.request_done()
    relay.data_received(b"x" * 200)
    assert transport.writes == [b"refused"]
    assert transport.closed


def test_bodies_and_the_first_request_are_not_checked(
    relay: tuple[Relay, Inner, Transport],
) -> None:
    proxy, inner, transport = relay
    body = b"x" * 1000
    proxy.data_received(REQUEST + body)  # read by the door already
    proxy.data_received(body)  # the library streams (or discards) a body
    assert inner.received == REQUEST + body + body
    assert not transport.is_closing()


def test_nothing_is_passed_before_the_connection_is_made(dropped: list[str]) -> None:
    inner = Inner()
    relay = Relay(
        inner,
        max_head_bytes=100,
        refusal=lambda status, message: b"",
        dropped=dropped.append,
    )
    relay.data_received(REQUEST)
    assert inner.events == []


async def test_the_limit_reads_in_kilobytes_when_it_is_some(dropped: list[str]) -> None:
    transport = Transport()
    relay = Relay(
        Inner(),
        max_head_bytes=2048,
        refusal=lambda status, message: message.encode(),
        dropped=dropped.append,
    )
    relay.connection_made(transport)  # type: ignore[arg-type]
    relay.request_done()
    relay.data_received(b"G" * 4096)
    assert transport.writes == [b"Request head is larger than 2 KB"]
