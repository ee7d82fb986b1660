"""TLS on the node's port: https:// and wss:// with a self-signed certificate, reloaded on SIGHUP.

Certificates are made with the openssl command for 127.0.0.1 and localhost. Clients trust
exactly the certificate under test: an `ssl.SSLContext` (Python), a CA bundle (requests),
NODE_EXTRA_CA_CERTS (Node).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pusher
import pytest
from pusher.requests import RequestsBackend

from tests import services
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.node_clients import events, run_scenario
from tests.e2e.pusher_ws import connect, data_of
from tests.e2e.test_websocket_frames import (
    CLOSE,
    PING,
    PING_MESSAGE,
    PONG,
    TEXT,
    RawSocket,
    client_frame,
    upgrade_request,
)

pytestmark = pytest.mark.e2e


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is required for the TLS tests", pytrace=False)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN=ressonance-test-{name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def trusting(*certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for cert in certs:
        context.load_verify_locations(cafile=str(cert))
    return context


def fingerprint_of(cert: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


def served_fingerprint(server: RunningServer) -> str:
    """The SHA-256 of the certificate a new TLS handshake gets (no verification)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((server.host, server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


async def logged(server: RunningServer, text: str, times: int = 1) -> None:
    """Wait until the server's log holds `text` `times` times."""
    deadline = time.monotonic() + 5
    while server.log().count(text) < times:
        assert time.monotonic() < deadline, f"{text!r} not logged {times}x:\n{server.log()}"
        await asyncio.sleep(0.05)


class Certs:
    def __init__(self, directory: Path) -> None:
        self.first = make_certificate(directory, "first")
        self.second = make_certificate(directory, "second")
        # The server reads these paths; the tests swap their contents.
        self.cert, self.key = directory / "live.crt", directory / "live.key"
        self.install(*self.first)

    def install(self, cert: Path, key: Path) -> None:
        shutil.copyfile(cert, self.cert)
        shutil.copyfile(key, self.key)

    @property
    def bundle(self) -> Path:
        """Both certificates, for clients that must trust the server before and after reload."""
        path = self.cert.parent / "bundle.pem"
        path.write_text(self.first[0].read_text() + self.second[0].read_text())
        return path


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


@pytest.fixture
def tls_server(tmp_path: Path, certs: Certs) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path,
        args=["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)],
        client_ssl=trusting(certs.first[0], certs.second[0]),
    )
    yield running
    stop_server(running)


def sdk(server: RunningServer, ca_file: Path) -> pusher.Pusher:
    # With ssl=True the SDK's requests backend pins its own CA bundle as `verify`, ignoring
    # REQUESTS_CA_BUNDLE and any verify option: a backend subclass trusts our certificate.
    class TrustingBackend(RequestsBackend):  # type: ignore[misc]
        def __init__(self, client: Any, **options: Any) -> None:
            super().__init__(client, **options)
            self.options["verify"] = str(ca_file)

    return pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host=server.host,
        port=server.port,
        ssl=True,
        backend=TrustingBackend,
    )


async def test_https_api_and_wss_with_the_pypi_sdk(tls_server: RunningServer, certs: Certs) -> None:
    banner = tls_server.log()
    assert "listening on https://127.0.0.1:" in banner
    assert "  health:    https://127.0.0.1:" in banner
    assert "http://" not in banner
    client = sdk(tls_server, certs.first[0])
    connector = aiohttp.TCPConnector(ssl=trusting(certs.first[0]))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with connect(http, tls_server) as ws:
            await ws.subscribe("secure")
            reply = await asyncio.to_thread(client.trigger, "secure", "hello", {"over": "tls"})
            assert reply == {}
            message = await ws.expect("hello")
            assert data_of(message) == {"over": "tls"}
            info = await asyncio.to_thread(client.channel_info, "secure", ["subscription_count"])
            assert info == {"occupied": True, "subscription_count": 1}
        async with http.get(f"{tls_server.http_url}/healthz") as response:
            assert response.status == 200


def test_plain_http_is_not_served_on_a_tls_port(tls_server: RunningServer) -> None:
    with socket.create_connection((tls_server.host, tls_server.port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200")


def test_pusher_js_with_force_tls(tls_server: RunningServer, certs: Certs) -> None:
    env = {"NODE_EXTRA_CA_CERTS": str(certs.first[0])}
    with run_scenario(tls_server, "pusherjs_tls.mjs", env) as seen:
        assert seen["trigger_response"]["status"] == 200
        assert events(seen["events"], "secure-event") == [{"over": "tls"}]
        assert seen["transport"] == "ws"  # pusher-js's WebSocket transport, with TLS forced
        assert seen["socket_url"].startswith(f"wss://127.0.0.1:{tls_server.port}/app/")
        assert seen["clients"]["tls"]["connection_errors"] == []
        assert seen["state"] == "connected"


async def test_sighup_reloads_the_certificate_and_keeps_connections(
    tls_server: RunningServer, certs: Certs
) -> None:
    first, second = fingerprint_of(certs.first[0]), fingerprint_of(certs.second[0])
    assert served_fingerprint(tls_server) == first
    client = sdk(tls_server, certs.bundle)
    connector = aiohttp.TCPConnector(ssl=trusting(certs.first[0], certs.second[0]))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        connect(http, tls_server) as ws,
    ):
        await ws.subscribe("kept")
        certs.install(*certs.second)
        tls_server.process.send_signal(signal.SIGHUP)
        await logged(tls_server, "event=tls_reloaded")
        assert served_fingerprint(tls_server) == second
        # the connection made before the reload still works both ways
        await asyncio.to_thread(client.trigger, "kept", "after-reload", {"n": 1})
        assert data_of(await ws.expect("after-reload")) == {"n": 1}
        await ws.ping()
        assert tls_server.process.poll() is None


async def test_a_broken_file_on_sighup_keeps_the_old_certificate(
    tls_server: RunningServer, certs: Certs
) -> None:
    first = fingerprint_of(certs.first[0])
    certs.cert.write_text("not a certificate\n")
    tls_server.process.send_signal(signal.SIGHUP)
    await logged(tls_server, "event=tls_reload_failed")
    assert "holds no PEM certificate" in tls_server.log()
    assert served_fingerprint(tls_server) == first
    # a certificate whose key does not match: also refused, the old one stays
    shutil.copyfile(certs.second[0], certs.cert)
    tls_server.process.send_signal(signal.SIGHUP)
    await logged(tls_server, "event=tls_reload_failed", times=2)
    assert "does not match the certificate" in tls_server.log()
    assert served_fingerprint(tls_server) == first
    client = sdk(tls_server, certs.first[0])
    assert await asyncio.to_thread(client.channels_info) == {"channels": {}}
    assert tls_server.process.poll() is None


async def test_every_worker_loads_and_reloads_the_certificate(tmp_path: Path, certs: Certs) -> None:
    first, second = fingerprint_of(certs.first[0]), fingerprint_of(certs.second[0])
    with services.running(services.valkey(tmp_path / "valkey")) as redis:
        server = start_server(
            tmp_path,
            args=[
                *("--tls-cert", str(certs.cert), "--tls-key", str(certs.key)),
                *("--workers", "2", "--backbone", redis.url),
            ],
            client_ssl=trusting(certs.first[0], certs.second[0]),
        )
        try:
            await logged(server, "event=listening", times=2)
            assert {served_fingerprint(server) for _ in range(8)} == {first}
            certs.install(*certs.second)
            server.process.send_signal(signal.SIGHUP)  # the main process passes it on
            await logged(server, "event=tls_reloaded", times=2)
            assert {served_fingerprint(server) for _ in range(8)} == {second}
        finally:
            stop_server(server)


async def open_raw_tls(server: RunningServer, context: ssl.SSLContext, early: bytes) -> RawSocket:
    """A raw WebSocket over TLS after the 101 response; `early` sent with the request."""
    reader, writer = await asyncio.open_connection(
        server.host, server.port, ssl=context, server_hostname="localhost"
    )
    writer.write(upgrade_request(server) + early)
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return RawSocket(reader, writer)


async def test_the_websocket_layer_over_tls(tls_server: RunningServer, certs: Certs) -> None:
    """The takeover works on the SSL transport: early frames, pings, violations and close."""
    context = trusting(certs.first[0])
    early = client_frame(TEXT, PING_MESSAGE)
    socket = await open_raw_tls(tls_server, context, early)
    assert (await socket.message())["event"] == "pusher:connection_established"
    assert (await socket.message())["event"] == "pusher:pong"  # sent behind the upgrade
    socket.send(client_frame(PING, b"tls"))
    assert await socket.frame() == (PONG, b"tls")
    # a violation: close frame 1002; an SSL transport cannot half-close, so the server waits
    # for the client to hang up (or its close timeout)
    socket.send(client_frame(3, b"x"))
    await socket.expect_close(1002)
    socket.writer.close()
    # a clean close handshake over TLS: 1000 back, then the server hangs up
    socket = await open_raw_tls(tls_server, context, b"")
    assert (await socket.message())["event"] == "pusher:connection_established"
    socket.send(client_frame(CLOSE, struct.pack("!H", 1000)))
    await socket.expect_close(1000)
    await socket.expect_eof()
    socket.writer.close()
    assert "Traceback" not in tls_server.log()
