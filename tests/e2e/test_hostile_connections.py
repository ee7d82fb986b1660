"""Hostile connections on a running node: silent sockets, slow and huge heads, fd exhaustion.

Issue "Hold the line under hostile traffic" (parts 1, 2, 4, 5). Every attacker here is a raw
socket on loopback; the well-behaved clients are the ones the other e2e tests use. Deadlines
are set short through RESSONANCE_* variables so the tests wait seconds, and every wait is
bounded generously (the assertions are about what happens, never about how fast).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests import services
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.pusher_ws import connect, signed_query
from tests.e2e.test_abuse import attempt
from tests.e2e.test_tls import make_certificate, trusting

pytestmark = pytest.mark.e2e

BOUND = 15.0  # seconds: generous, for a deadline of at most a few seconds to be seen
MEGABYTE_LINE = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"


@contextlib.contextmanager
def running(tmp_path: Path, **env: str) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path, extra_env={f"RESSONANCE_{k.upper()}": v for k, v in env.items()}
    )
    try:
        yield server
    finally:
        stop_server(server)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    received = b""
    async with asyncio.timeout(BOUND):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def exchange(server: RunningServer, request: bytes) -> bytes:
    """Send `request` on a new connection; everything received until the server closes it."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        return await closed_by_server(reader)
    finally:
        writer.close()


def dropped(server: RunningServer) -> dict[str, float]:
    """ressonance_connections_dropped_total by reason, from /metrics."""
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = r'^ressonance_connections_dropped_total\{reason="([a-z_]+)"\} (\S+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


async def test_silent_sockets_and_slow_heads_are_closed_by_their_deadlines(
    tmp_path: Path,
) -> None:
    with running(tmp_path, first_byte_timeout="1", request_timeout="3") as server:
        silent = [await asyncio.open_connection(server.host, server.port) for _ in range(50)]

        async def trickle() -> bytes:
            """A slow-loris head, one byte every 0.3 s until the server answers."""
            reader, writer = await asyncio.open_connection(server.host, server.port)
            answer = asyncio.create_task(reader.read(65536))
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
                if answer.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.3)
            async with asyncio.timeout(BOUND):
                received = await answer
            writer.close()
            return received

        answers = await asyncio.gather(*(trickle() for _ in range(20)))
        assert {status_line(answer) for answer in answers} == {"HTTP/1.1 408 Request Timeout"}
        assert b"min_request_bytes_per_sec" in answers[0]
        for reader, writer in silent:
            assert await closed_by_server(reader) == b""
            writer.close()
        counts = dropped(server)
        assert counts["first_byte_timeout"] >= 50
        assert counts["request_too_slow"] == 20


async def test_idle_keepalive_connections_are_closed_on_both_paths(tmp_path: Path) -> None:
    with running(tmp_path, keepalive_timeout="1") as server:
        # aiohttp answers /healthz: its keep-alive timeout is the same setting
        answer = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_line(answer) == "HTTP/1.1 200 OK"
        # the front door answers a signed publish itself
        path = f"/apps/{server.app_id}/events"
        body = json.dumps({"name": "e", "channel": "c", "data": "d"}).encode()
        query = "&".join(f"{k}={v}" for k, v in signed_query(server, "POST", path, body).items())
        head = f"POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        assert status_line(await exchange(server, head.encode() + body)) == "HTTP/1.1 200 OK"
        assert dropped(server)["keepalive_timeout"] >= 1


@contextlib.asynccontextmanager
async def watching_rss(server: RunningServer) -> AsyncIterator[list[int]]:
    """RSS samples of the server process while the block runs: [before, peak, ...]."""
    process = psutil.Process(server.process.pid)
    samples = [process.memory_info().rss]
    running = True

    async def sample() -> None:
        while running:
            samples.append(process.memory_info().rss)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        running = False
        await task


async def send_huge_head(server: RunningServer, first: bytes = b"") -> str:
    """Send a head with a 1 MB header line (after `first`, answered); the status seen."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        if first:
            writer.write(first)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE)
            assert length is not None
            await reader.readexactly(int(length[1]))
        with contextlib.suppress(ConnectionError):
            writer.write(MEGABYTE_LINE)
            await writer.drain()
        async with asyncio.timeout(BOUND):
            return status_line(await reader.readuntil(b"\r\n"))
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


async def test_huge_heads_are_refused_and_the_memory_is_given_back(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        for _ in range(3):  # warm up: the first requests allocate what every request reuses
            assert await send_huge_head(server) == "HTTP/1.1 431 Request Header Fields Too Large"
        await asyncio.sleep(1)
        process = psutil.Process(server.process.pid)
        before = process.memory_info().rss
        async with watching_rss(server) as samples:
            statuses = await asyncio.gather(*(send_huge_head(server) for _ in range(200)))
            # on a connection aiohttp already took, the relay in front of its parser
            keepalive = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            handed = await asyncio.gather(*(send_huge_head(server, keepalive) for _ in range(20)))
        await asyncio.sleep(2)
        after = process.memory_info().rss
        assert Counter(statuses) == {"HTTP/1.1 431 Request Header Fields Too Large": 200}
        assert Counter(handed) == {"HTTP/1.1 431 Request Header Fields Too Large": 20}
        peak = max(samples)
        print(
            f"RSS MB before={before / 2**20:.1f} peak={peak / 2**20:.1f} after={after / 2**20:.1f}"
        )
        assert peak - before < 150 * 2**20  # never a copy of what was sent
        assert after - before < 8 * 2**20  # and given back
        assert dropped(server)["head_too_large"] >= 203


def low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def silent_sockets(server: RunningServer, count: int) -> list[socket.socket]:
    """`count` TCP connections from 127.0.0.1 that never send a byte."""
    sockets = []
    for _ in range(count):
        with contextlib.suppress(OSError):  # the server may already refuse some
            sockets.append(socket.create_connection((server.host, server.port), timeout=5))
    return sockets


async def test_exhausting_descriptors_does_not_lock_out_probes_or_other_clients(
    tmp_path: Path,
) -> None:
    """1,100 silent sockets against a node limited to 1,024 descriptors (deadlines long)."""
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 1200, "the test needs descriptors"
    server = start_server(
        tmp_path,
        extra_env={"RESSONANCE_FIRST_BYTE_TIMEOUT": "120"},
        preexec_fn=low_descriptor_limit,
    )
    attack: list[socket.socket] = []
    try:
        assert "event=descriptors limit=1024" in server.log()
        attack = silent_sockets(server, 1100)
        await asyncio.sleep(1.5)  # a tick: the silent ones are now older than new arrivals
        async with aiohttp.ClientSession() as http:  # from the attacker's own address
            for path in ("/healthz", "/readyz", "/metrics"):
                async with asyncio.timeout(BOUND), http.get(server.http_url + path) as response:
                    assert response.status == 200
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as http, connect(http, server) as ws:
            assert ws.socket_id
        counts = dropped(server)
        assert counts.get("shed_for_capacity", 0) + counts.get("descriptor_reserve", 0) > 0
        assert server.process.poll() is None
        assert "Too many open files" not in server.log()
        assert wait_for_log(server)
    finally:
        for sock in attack:
            sock.close()
        stop_server(server)


def wait_for_log(server: RunningServer) -> bool:
    deadline = time.monotonic() + BOUND
    while "event=connections_shed" not in server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


async def test_a_tls_handshake_that_never_completes_is_closed(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "node")
    server = start_server(
        tmp_path,
        extra_env={"RESSONANCE_FIRST_BYTE_TIMEOUT": "1"},
        args=["--tls-cert", str(cert), "--tls-key", str(key)],
        client_ssl=trusting(cert),
    )
    try:
        assert await exchange(server, b"") == b""  # silent
        assert await exchange(server, b"\x16\x03\x01\x02\x00\x01") == b""  # a ClientHello's start
        # a TLS client that completes its handshake but sends nothing: the door's deadline
        context = trusting(cert)
        reader, writer = await asyncio.open_connection(
            server.host, server.port, ssl=context, server_hostname="localhost"
        )
        assert await closed_by_server(reader) == b""
        writer.close()
        async with aiohttp.ClientSession() as http:  # and the node serves on
            response = await http.get(f"{server.http_url}/healthz", ssl=context)
            assert response.status == 200
    finally:
        stop_server(server)


async def test_every_worker_enforces_the_deadlines(tmp_path: Path) -> None:
    with services.running(services.valkey(tmp_path / "valkey")) as redis:
        server = start_server(
            tmp_path,
            extra_env={"RESSONANCE_FIRST_BYTE_TIMEOUT": "1"},
            args=["--workers", "2", "--backbone", redis.url],
        )
        try:
            answers = await asyncio.gather(*(exchange(server, b"") for _ in range(40)))
            assert answers == [b""] * 40
            assert server.log().count("event=descriptors") == 2
        finally:
            stop_server(server)


async def test_a_websocket_that_cannot_open_in_time_is_told_to_retry(tmp_path: Path) -> None:
    """The app's connection rate lives in Redis; with Redis stalled, the open cannot finish."""
    with services.running(services.valkey(tmp_path / "valkey")) as redis:
        server = start_server(
            tmp_path,
            extra_env={
                "RESSONANCE_UPGRADE_TIMEOUT": "1",
                "RESSONANCE_APP_MAX_CONNECTIONS_PER_SEC": "100",
            },
            args=["--backbone", redis.url],
        )
        try:
            redis.pause()
            try:
                async with aiohttp.ClientSession() as http:
                    result = await attempt(http, server)
            finally:
                redis.resume()
            assert result.error == {
                "code": 4100,
                "message": "Server over capacity: connection not opened in time",
            }
            assert result.close_code == 4100  # pusher-js retries after a second
            assert dropped(server)["upgrade_timeout"] == 1
        finally:
            stop_server(server)
