"""Glue to aiohttp: the one port, its routes, and WebSocket I/O. The only module importing it.

Routes: `GET /app/{key}` (WebSocket, reference §1), `/apps/...` and `/users/...` (HTTP API,
§5), `/healthz`, `/readyz`, `/metrics` (Prometheus). A WebSocket upgrade on any other path is
accepted and closed with 4005, so pusher-js shows the reason instead of a bare failure.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import orjson
from aiohttp import WSMsgType, web

from ressonance.protocol import messages as m
from ressonance.protocol.errors import ApiError, ErrorCode
from ressonance.protocol.frames import close_frame
from ressonance.protocol.handshake import origin_allowed, protocol_problem
from ressonance.server.http_api import ApiRequest, ApiResponse, HttpApi, error_response
from ressonance.server.node import Node
from ressonance.server.session import Session

log = logging.getLogger(__name__)

INTERNAL_ERROR = 1011
CLOSE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Size limits applied before anything is parsed."""

    max_ws_message_bytes: int = 256 * 1024
    max_http_body_bytes: int = 256 * 1024


class AiohttpOutlet:
    """Writes pre-built frames straight to the socket's transport (no per-send framing)."""

    __slots__ = ("_closing", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._closing: asyncio.TimerHandle | None = None

    def write(self, frame: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(frame)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self, code: int, reason: str) -> None:
        # A raw close frame rather than `ws.close()`: called from a task other than the
        # reader, aiohttp's close() drops the TCP connection right after sending its frame,
        # without the client's Close reply, so some clients report 1006 instead of `code`.
        # The reader loop receives the reply and aiohttp then ends the connection (RFC 6455
        # §7.1.1). A client that never answers is cut off after CLOSE_TIMEOUT_SECONDS with
        # abort(), not close(): close() would wait for the write buffer to drain, which a
        # client that stopped reading never lets happen, and the connection (and its
        # buffer) would live on.
        if self._closing is None:
            self.write(close_frame(code, reason))
            loop = asyncio.get_running_loop()
            self._closing = loop.call_later(CLOSE_TIMEOUT_SECONDS, self._transport.abort)

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def release(self) -> None:
        """The connection is over: drop the close timer, if any."""
        if self._closing is not None:
            self._closing.cancel()


def json_response(response: ApiResponse) -> web.Response:
    return web.Response(
        body=orjson.dumps(response.body),
        status=response.status,
        content_type="application/json",
        headers=response.headers,
    )


class Transport:
    """The aiohttp application of a node."""

    def __init__(self, node: Node, limits: TransportLimits) -> None:
        self.node = node
        self.limits = limits
        self.api = HttpApi(node)
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=limits.max_http_body_bytes)
        self.app.router.add_get("/app/{key}", self._websocket)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_route("*", "/apps/{tail:.*}", self._api)
        self.app.router.add_route("*", "/users/{tail:.*}", self._api)
        self.app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Start accepting connections on host:port (SO_REUSEPORT for worker processes)."""
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=4096, reuse_port=reuse_port or None)
        await site.start()

    async def stop_accepting(self) -> None:
        """Close the listening socket; established connections carry on."""
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()

    async def close(self) -> None:
        """Stop listening and close every remaining connection."""
        if self._runner is not None:
            await self._runner.cleanup()

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
        too_large = ApiError(413, f"Request body is larger than {limit // 1024} KB")
        unread = ApiRequest(request.method, request.path, dict(request.query), b"")
        if request.content_length is not None and request.content_length > limit:
            return json_response(self.api.refuse(unread, too_large))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return json_response(self.api.refuse(unread, too_large))
        api_request = ApiRequest(request.method, request.path, unread.query, body)
        return json_response(await self.api.handle(api_request))

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False)
        if ws.can_prepare(request).ok:
            await ws.prepare(request)
            return await self._refuse(
                ws, ErrorCode.PATH_NOT_FOUND, "Path not found; use /app/{key}"
            )
        return json_response(error_response(ApiError(404, f"Nothing at {request.path[:100]}")))

    async def _refuse(
        self, ws: web.WebSocketResponse, code: int, reason: str
    ) -> web.WebSocketResponse:
        # pusher:error first, then the close code (reference §1, "Sending an error at connect").
        self.node.metrics.connection_refused(code)
        await ws.send_str(m.error(reason, code).decode())
        await ws.close(code=code, message=reason.encode()[:120])
        return ws

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            compress=False, max_msg_size=self.limits.max_ws_message_bytes, autoping=True
        )
        if not ws.can_prepare(request).ok:
            error = ApiError(400, "Expected a WebSocket upgrade")
            return json_response(error_response(error))
        await ws.prepare(request)
        problem = protocol_problem(request.query)
        if problem is not None:
            return await self._refuse(ws, *problem)
        app = await self.node.apps.find_by_key(request.match_info["key"])
        if app is None:
            return await self._refuse(ws, ErrorCode.APP_NOT_FOUND, "App key does not exist")
        if not origin_allowed(request.headers.get("Origin"), app.allowed_origins):
            return await self._refuse(ws, ErrorCode.UNAUTHORIZED, "Origin not allowed")
        transport = request.transport
        assert transport is not None
        outlet = AiohttpOutlet(transport)
        opened = self.node.open_session(app, outlet)
        if not isinstance(opened, Session):
            return await self._refuse(ws, *opened)
        try:
            await self._read(ws, opened, outlet)
        finally:
            outlet.release()
            await self.node.close_session(opened, ws.close_code)
        return ws

    async def _read(
        self, ws: web.WebSocketResponse, session: Session, outlet: AiohttpOutlet
    ) -> None:
        async for message in ws:
            if outlet.closing:
                continue  # the server sent Close: only the client's Close reply matters now
            try:
                if message.type is WSMsgType.TEXT:
                    await self.node.receive(session, message.data)
                elif message.type is WSMsgType.BINARY:
                    session.error("Binary frames are not supported; send JSON text", None)
            except Exception:
                log.exception("event=session_failed socket_id=%s", session.socket_id)
                session.close(INTERNAL_ERROR, "Internal server error")
