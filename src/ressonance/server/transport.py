"""Glue to aiohttp: the one port, and the requests the front door hands on. The only module
of the server importing the web library (import-linter checks it).

Every connection starts with the front door (`front_door.py`), which answers WebSocket
upgrades to `/app/{key}` and signed publishes itself and hands every other request to
aiohttp's server protocol. aiohttp has one catch-all route: the path is resolved once with the
node's routing table (`server.routes`) and the request goes to whoever answers its area:
`GET /app/{key}` (WebSocket, reference §1) to the `Gate`, as the front door's upgrades do;
`/apps/...` and `/users/...` to the HTTP API (§5); `/admin/...` to the admin API; `/healthz`,
`/readyz`, `/metrics` (Prometheus) here. A WebSocket upgrade on any other path is accepted
and refused with 4005 by the gate, so pusher-js shows the reason instead of a bare failure;
any other request there is a JSON 404.

Rules: nothing here decides whether a connection may open (that is the gate's) or what a
path means (that is the routing table's); this module turns aiohttp's requests into ours
and our answers into aiohttp's. It is given the outer ring it serves (HTTP API, gate,
sockets, built by `server.service`) and never imports the node.

Both ways in apply the same `ConnectionLimits` (`server.limits`): aiohttp's parser gets the
head limits and its keep-alive timeout, the heads after the first on a handed-on connection
pass a `Relay`, a body it reads has the request deadline, a TLS handshake the first-byte
deadline, and the gate gives a WebSocket `upgrade_timeout` to open (`Gate.sweep`).
"""

from __future__ import annotations

import asyncio
import logging
import socket as sockets_module
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from ressonance.protocol.errors import ApiError
from ressonance.protocol.handshake import Handshake
from ressonance.protocol.request_head import MAX_HEADERS
from ressonance.server import routes
from ressonance.server.admin_api import DISABLED, AdminApi, AdminRequest
from ressonance.server.census import descriptor_budget
from ressonance.server.front_door import SWEEP_SECONDS, FrontDoors
from ressonance.server.gate import PATH_NOT_FOUND, Gate
from ressonance.server.http_api import ApiRequest, ApiResponse, HttpApi, error_response
from ressonance.server.limits import ConnectionLimits
from ressonance.server.metrics import Metrics
from ressonance.server.readiness import Readiness
from ressonance.server.relay import Relay
from ressonance.server.routes import Area, Endpoint, Route
from ressonance.server.websocket import Sockets, WebSocket

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
        *,
        api: HttpApi,
        gate: Gate,
        sockets: Sockets,
        readiness: Readiness,
        metrics: Metrics,
        limits: TransportLimits,
        admin: AdminApi | None = None,
        connections: ConnectionLimits | None = None,
    ) -> None:
        """`sockets` take over the upgraded connections (their message size limit is
        `limits.max_ws_message_bytes`); `readiness` answers /readyz, `metrics` /metrics;
        `connections` bounds each connection until it is a session (defaults when None)."""
        self.limits = limits
        self.connections = connections or ConnectionLimits()
        self.gate = gate
        self.api = api
        self.admin = admin
        self.sockets = sockets
        self.readiness = readiness
        self.metrics = metrics
        self._taken_over = _TakenOver()
        self._runner: web.AppRunner | None = None
        self._doors: FrontDoors | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._node_endpoints: dict[Endpoint, Callable[[web.Request], Awaitable[web.Response]]] = {
            routes.HEALTHZ: self._healthz,
            routes.READYZ: self._readyz,
            routes.METRICS: self._metrics,
        }
        self.app = web.Application(client_max_size=limits.max_http_body_bytes)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)  # routes.py routes
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
        self._doors = doors = FrontDoors(
            loop=asyncio.get_running_loop(),
            api=self.api,
            sockets=self.sockets,
            gate=self.gate,
            metrics=self.metrics,
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
            dropped=self.metrics.connection_dropped,
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
                self.gate.sweep()
            except Exception:  # the next tick must still come: deadlines depend on it
                log.exception("event=sweep_failed")

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

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Hand `request` to whoever answers its route's area (the path resolved once)."""
        route = routes.resolve(request.path)
        endpoint = route.endpoint
        if route.area is Area.HTTP_API:
            return await self._api(request, route)
        if route.area is Area.ADMIN:
            return await self._admin(request, route)
        if endpoint is None or request.method not in endpoint.methods:
            return await self._not_found(request)
        if endpoint is routes.WEBSOCKET:
            return await self._websocket(request, route)
        return await self._node_endpoints[endpoint](request)

    async def _healthz(self, _: web.Request) -> web.Response:
        return json_response(ApiResponse(200, {"status": "ok"}))

    async def _readyz(self, _: web.Request) -> web.Response:
        ready = self.readiness.ready
        return json_response(ApiResponse(200 if ready else 503, {"ready": ready}))

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _api(self, request: web.Request, route: Route) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._not_found(request)  # a WebSocket upgrade on an API path
        limit = self.limits.max_http_body_bytes
        body = await _read_bounded(request, limit, self.connections.request_timeout)
        query = dict(request.query)
        if body is None:
            too_large = ApiError(413, f"Request body is larger than {limit // 1024} KB")
            unread = ApiRequest(request.method, request.path, query, b"", route)
            return json_response(self.api.refuse(unread, too_large))
        key = request.headers.get("Idempotency-Key")
        api_request = ApiRequest(request.method, request.path, query, body, route, key)
        return json_response(await self.api.handle(api_request))

    async def _admin(self, request: web.Request, route: Route) -> web.StreamResponse:
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
            route,
            body is None,
        )
        return json_response(await self.admin.handle(admin_request))

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, autoping=False)
        if not ws.can_prepare(request).ok:
            return json_response(error_response(ApiError(404, f"Nothing at {request.path[:100]}")))
        socket = await self._take_over(request, ws)
        if socket is not None:
            self.gate.refuse(socket, PATH_NOT_FOUND)
        return self._taken_over if socket is not None else ws

    async def _websocket(self, request: web.Request, route: Route) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, autoping=False)
        if not ws.can_prepare(request).ok:
            error = ApiError(400, "Expected a WebSocket upgrade")
            return json_response(error_response(error))
        socket = await self._take_over(request, ws)
        if socket is None:
            return ws  # the client left during the handshake
        handshake = Handshake(
            route.params["key"],
            request.query,
            request.headers.get("Origin"),
            tuple(request.headers.getall("X-Forwarded-For", ())),
        )
        await self.gate.open(socket, handshake)
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
