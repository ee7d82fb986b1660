"""Glue to aiohttp: the one port, its routes, and WebSocket I/O. The only module importing it.

Routes: `GET /app/{key}` (WebSocket, reference §1), `/apps/...` and `/users/...` (HTTP API,
§5), `/admin/...` (admin API), `/healthz`, `/readyz`, `/metrics` (Prometheus). A WebSocket
upgrade on any other path is accepted and closed with 4005, so pusher-js shows the reason
instead of a bare failure.

Every connection starts with the front door (`front_door.py`), which answers WebSocket
upgrades to `/app/{key}` and signed publishes itself and hands every other request to
aiohttp's server protocol; both end in the same handlers (`_open`, `HttpApi.handle`).

Both ways apply the same `ConnectionLimits` (`server.limits`): aiohttp's parser gets the
head limits and its keep-alive timeout, a body it reads has the request deadline, a TLS
handshake the first-byte deadline, and a WebSocket must open within `upgrade_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import socket as sockets_module
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import orjson
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from ressonance.protocol.errors import ApiError, ErrorCode
from ressonance.protocol.handshake import origin_allowed, protocol_problem
from ressonance.protocol.request_head import MAX_HEADERS, Upgrade
from ressonance.server.admin_api import DISABLED, AdminApi, AdminRequest
from ressonance.server.admission import Admission, AdmissionLimits
from ressonance.server.census import descriptor_budget
from ressonance.server.deadlines import Openings
from ressonance.server.front_door import SWEEP_SECONDS, FrontDoors
from ressonance.server.http_api import ApiRequest, ApiResponse, HttpApi, error_response
from ressonance.server.limits import ConnectionLimits
from ressonance.server.node import Node
from ressonance.server.relay import Relay
from ressonance.server.session import Session
from ressonance.server.websocket import INTERNAL_ERROR, Sockets, WebSocket

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Size limits applied before anything is parsed."""

    max_ws_message_bytes: int = 256 * 1024
    max_http_body_bytes: int = 256 * 1024


class _TakenOver(web.StreamResponse):
    """What the WebSocket handler returns once the connection is ours: aiohttp writes nothing."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _FrontDoorSite(web.BaseSite):
    """A TCP site whose connections start with a front door instead of aiohttp's protocol."""

    __slots__ = ("_doors", "_handshake_timeout", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        doors: FrontDoors,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        reuse_port: bool,
        handshake_timeout: float,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=4096)
        self._handshake_timeout = handshake_timeout
        self._doors = doors
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = server = await loop.create_server(
            self._doors,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
            # The door sees a TLS connection only once its handshake is done: until then, this.
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
        )
        for listener in server.sockets:
            # Accepted sockets inherit it: aiohttp sets it on each of its connections.
            listener.setsockopt(sockets_module.SOL_SOCKET, sockets_module.SO_KEEPALIVE, 1)


class Handshake(NamedTuple):
    """What opening a WebSocket needs from its upgrade request, whoever answered it."""

    key: str
    query: Mapping[str, str]
    origin: str | None
    peer: str | None  # the client's address, as aiohttp's `request.remote`
    forwarded_for: tuple[str, ...]  # X-Forwarded-For headers, for trusted proxies


def peer_address(transport: asyncio.BaseTransport) -> str | None:
    """The peer's address as aiohttp's `request.remote` gives it."""
    peername = transport.get_extra_info("peername")
    if peername is None:
        return None
    if isinstance(peername, list | tuple):
        return str(peername[0])
    return str(peername)


async def _read_bounded(request: web.Request, limit: int, seconds: float) -> bytes | None:
    """The request's body, or None when it is larger than `limit` (declared or as read).

    A body that does not arrive within `seconds` is answered 408 (request_timeout)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None
    except TimeoutError:
        raise _request_timeout() from None


def _request_timeout() -> web.HTTPRequestTimeout:
    body = {"error": "Request body not received in time (request_timeout)", "code": 408}
    return web.HTTPRequestTimeout(
        body=orjson.dumps(body), content_type="application/json", headers={"Connection": "close"}
    )


def json_response(response: ApiResponse) -> web.Response:
    return web.Response(
        body=orjson.dumps(response.body),
        status=response.status,
        content_type="application/json",
        headers=response.headers,
    )


class Transport:
    """The aiohttp application of a node."""

    def __init__(
        self,
        node: Node,
        limits: TransportLimits,
        admission: AdmissionLimits | None = None,
        admin: AdminApi | None = None,
        connections: ConnectionLimits | None = None,
    ) -> None:
        self.node = node
        self.limits = limits
        self.connections = connections or ConnectionLimits()
        self._openings: Openings[WebSocket] = Openings(self.connections)
        self.admission = Admission(node, admission)
        self.api = HttpApi(node)
        self.admin = admin
        self.sockets = Sockets(node, limits.max_ws_message_bytes)
        self._taken_over = _TakenOver()
        self._runner: web.AppRunner | None = None
        self._doors: FrontDoors | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.app = web.Application(client_max_size=limits.max_http_body_bytes)
        self.app.router.add_get("/app/{key}", self._websocket)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_route("*", "/apps/{tail:.*}", self._api)
        self.app.router.add_route("*", "/users/{tail:.*}", self._api)
        self.app.router.add_route("*", "/admin/{tail:.*}", self._admin)
        self.app.router.add_route("*", "/{tail:.*}", self._not_found)
        self.app.on_response_prepare.append(self._answering)

    async def listen(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Start accepting connections on host:port (SO_REUSEPORT for worker processes).

        With `ssl_context`, the port speaks TLS only (https:// and wss://). After the upgrade
        the connection's transport is then the loop's SSL transport, which the `WebSocket`
        takes over just the same (it cannot half-close: `can_write_eof()` is false).
        """
        connections = self.connections
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=connections.keepalive_timeout,
            max_line_size=connections.max_request_line_bytes,
            max_field_size=connections.max_request_line_bytes,
            max_headers=MAX_HEADERS,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        budget = descriptor_budget(connections.reserved_descriptors)
        log.info(
            "event=descriptors limit=%s in_use=%d reserved=%d capacity=%s",
            budget.limit,
            budget.in_use,
            budget.reserve,
            budget.capacity,
        )
        self._doors = doors = FrontDoors(
            loop=asyncio.get_running_loop(),
            api=self.api,
            sockets=self.sockets,
            open_socket=self._open_upgraded,
            fallback=self._relay,
            max_body_bytes=self.limits.max_http_body_bytes,
            server_header=SERVER_SOFTWARE,
            limits=connections,
            capacity=budget.capacity,
        )
        site = _FrontDoorSite(
            self._runner,
            doors,
            host,
            port,
            ssl_context=ssl_context,
            reuse_port=reuse_port,
            handshake_timeout=connections.first_byte_timeout,
        )
        await site.start()
        self._sweeper = asyncio.create_task(self._sweep(doors))

    def _relay(self) -> Relay:
        """The web library's protocol for a connection the door hands on, behind a `Relay`."""
        assert self._runner is not None
        assert self._runner.server is not None
        assert self._doors is not None
        return Relay(
            self._runner.server(),
            max_head_bytes=self.connections.max_request_head_bytes,
            refusal=self._doors.refusal,
            dropped=self.node.metrics.connection_dropped,
        )

    @staticmethod
    async def _answering(request: web.BaseRequest, _: web.StreamResponse) -> None:
        """aiohttp begins an answer: once the body is in, the relay follows the next head."""
        transport = request.transport
        protocol = None if transport is None else transport.get_protocol()
        if isinstance(protocol, Relay):
            request.content.on_eof(protocol.request_done)

    async def _sweep(self, doors: FrontDoors) -> None:
        """Once a tick: the doors' deadlines and census, then the WebSockets still opening."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                doors.sweep()
                for socket in self._openings.tick():
                    self._upgrade_timed_out(socket)
            except Exception:  # the next tick must still come: deadlines depend on it
                log.exception("event=sweep_failed")

    def _upgrade_timed_out(self, socket: WebSocket) -> None:
        """A session did not open within upgrade_timeout (a slow app store or shared state)."""
        if socket.over:
            return
        self.node.metrics.connection_dropped("upgrade_timeout")
        self._refuse_socket(
            socket, ErrorCode.OVER_CAPACITY, "Server over capacity: connection not opened in time"
        )
        socket.uncork()

    async def stop_accepting(self) -> None:
        """Close the listening socket; established connections carry on."""
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()

    async def close(self) -> None:
        """Stop listening and close every remaining connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.sockets.close_all()
        if self._doors is not None:
            self._doors.close()  # idle ones now, busy ones after their answer
        if self._runner is not None:
            await self._runner.cleanup()
        if self._doors is not None:
            await self._doors.wait_idle()
        await asyncio.sleep(0)  # connection_lost of the sockets closed above
        await self.sockets.wait_idle()

    async def _healthz(self, _: web.Request) -> web.Response:
        return json_response(ApiResponse(200, {"status": "ok"}))

    async def _readyz(self, _: web.Request) -> web.Response:
        ready = self.node.ready
        return json_response(ApiResponse(200 if ready else 503, {"ready": ready}))

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.node.metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._not_found(request)  # a WebSocket upgrade on an API path
        limit = self.limits.max_http_body_bytes
        body = await _read_bounded(request, limit, self.connections.request_timeout)
        query = dict(request.query)
        if body is None:
            too_large = ApiError(413, f"Request body is larger than {limit // 1024} KB")
            unread = ApiRequest(request.method, request.path, query, b"")
            return json_response(self.api.refuse(unread, too_large))
        api_request = ApiRequest(request.method, request.path, query, body)
        return json_response(await self.api.handle(api_request))

    async def _admin(self, request: web.Request) -> web.StreamResponse:
        if self.admin is None:
            return json_response(error_response(ApiError(404, DISABLED)))
        body = await _read_bounded(
            request, self.admin.max_body_bytes, self.connections.request_timeout
        )
        authorization = request.headers.get("Authorization", "")
        admin_request = AdminRequest(
            request.method,
            request.path,
            dict(request.query),
            authorization,
            body or b"",
            body is None,
        )
        return json_response(await self.admin.handle(admin_request))

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, autoping=False)
        if not ws.can_prepare(request).ok:
            return json_response(error_response(ApiError(404, f"Nothing at {request.path[:100]}")))
        socket = await self._take_over(request, ws)
        if socket is not None:
            self._refuse_socket(socket, ErrorCode.PATH_NOT_FOUND, "Path not found; use /app/{key}")
        return self._taken_over if socket is not None else ws

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, autoping=False)
        if not ws.can_prepare(request).ok:
            error = ApiError(400, "Expected a WebSocket upgrade")
            return json_response(error_response(error))
        socket = await self._take_over(request, ws)
        if socket is None:
            return ws  # the client left during the handshake
        forwarded = tuple(request.headers.getall("X-Forwarded-For", ()))
        await self._open_safely(
            socket,
            Handshake(
                request.match_info["key"],
                request.query,
                request.headers.get("Origin"),
                request.remote,
                forwarded,
            ),
        )
        return self._taken_over

    async def _take_over(self, request: web.Request, ws: web.WebSocketResponse) -> WebSocket | None:
        """Answer the upgrade with aiohttp, then make the connection ours.

        aiohttp's RequestHandler is told the connection is lost (with its transport detached
        first, so it closes and writes nothing): it forgets the connection, and its parser,
        request, response and tasks are freed. A `WebSocket` becomes the transport's protocol.
        Bytes the client sent right behind its upgrade request (aiohttp keeps them as the
        "message tail" until a WebSocket parser is set) are taken before `prepare` and fed to
        ours. Nothing is read between `prepare` and the takeover: no await is in between.
        """
        handler = request.protocol
        tail: bytes = handler._message_tail
        handler._message_tail = b""
        await ws.prepare(request)
        transport = request.transport
        if transport is None or transport.is_closing():
            return None
        socket = self.sockets.adopt(transport)
        if self._doors is not None:
            self._doors.census.upgraded(transport)  # counted as a WebSocket from now on
        handler.transport = None
        handler.connection_lost(None)
        if tail:
            socket.data_received(tail)
        return socket

    def _open_upgraded(self, socket: WebSocket, upgrade: Upgrade) -> None:
        """The front door answered an upgrade: open the session (or refuse), then send."""
        assert self._doors is not None
        forwarded = upgrade.headers.get("x-forwarded-for")
        handshake = Handshake(
            upgrade.key,
            upgrade.query,
            upgrade.headers.get("origin"),
            peer_address(socket.transport),
            () if forwarded is None else (forwarded,),
        )
        self._doors.spawn(self._open_safely(socket, handshake))

    async def _open_safely(self, socket: WebSocket, handshake: Handshake) -> None:
        self._openings.start(socket)
        try:
            await self._open(socket, handshake)
        except Exception:
            log.exception("event=open_failed")
            socket.close(INTERNAL_ERROR, "Internal server error")
        finally:
            self._openings.done(socket)
            socket.uncork()

    async def _open(self, socket: WebSocket, handshake: Handshake) -> None:
        problem = protocol_problem(handshake.query)
        if problem is not None:
            self._refuse_socket(socket, *problem)
            return
        app = await self.node.apps.find_by_key(handshake.key)
        if app is None:
            self._refuse_socket(socket, ErrorCode.APP_NOT_FOUND, "App key does not exist")
            return
        if not origin_allowed(handshake.origin, app.allowed_origins):
            self._refuse_socket(socket, ErrorCode.UNAUTHORIZED, "Origin not allowed")
            return
        refusal = await self.admission.admit(app, handshake.peer, handshake.forwarded_for)
        if refusal is not None:
            self._refuse_socket(socket, *refusal)
            return
        if socket.over:
            return  # the client broke the protocol or left during the lookup
        opened = await self.node.connect(app, socket)
        if isinstance(opened, Session):
            socket.start(opened)
        else:
            self._refuse_socket(socket, *opened)

    def _refuse_socket(self, socket: WebSocket, code: int, reason: str) -> None:
        if socket.over:
            return  # closing already (refused when its upgrade timed out, or left)
        self.node.metrics.connection_refused(code)
        socket.refuse(code, reason)
