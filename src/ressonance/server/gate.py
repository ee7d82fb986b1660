"""The opening policy for a new WebSocket, whoever answered its upgrade.

The front door (for the upgrades it answers itself) and the transport (for those the web
library answered) both hand the taken-over `WebSocket` and its `Handshake` to `Gate.open`.
The checks run in this order; the first that says no refuses the connection:

1. the Pusher protocol version (`protocol_problem`: 4008, 4006, 4007; reference §1);
2. the app key (4001);
3. the Origin, against the app's allowed origins (4009);
4. admission (`server.admission`: node saturation, per-address and per-app rates; 4100);
5. the node's own checks (`SessionRegistry.connect`: a disabled app 4003, the connection
   quota 4004 or 4100).

Then the session starts on the socket.

Rules:
1. Every refusal is a `Refusal`: counted by code (`connections_refused`), then pusher:error
   with the code and a close with the same code.
2. A failure while opening is logged and closes the socket with 1011; in every case the
   socket is uncorked at the end, so the 101, if corked with it, and the first frames leave
   in one write.
3. A socket the client broke or left while the app was looked up gets no session.
4. No web library and nothing of the transport, the front door or the node (import-linter
   checks it): the peer's address is read from the socket's asyncio transport, and the gate
   is given the parts it uses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from ressonance.apps.base import AppStore
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.handshake import Handshake, Refusal, origin_allowed, protocol_problem
from ressonance.server.admission import Admission
from ressonance.server.metrics import Metrics
from ressonance.server.registry import SessionRegistry
from ressonance.server.session import Session
from ressonance.server.websocket import INTERNAL_ERROR, WebSocket

log = logging.getLogger(__name__)

APP_NOT_FOUND: Final = Refusal(ErrorCode.APP_NOT_FOUND, "App key does not exist")
ORIGIN_NOT_ALLOWED: Final = Refusal(ErrorCode.UNAUTHORIZED, "Origin not allowed")
PATH_NOT_FOUND: Final = Refusal(ErrorCode.PATH_NOT_FOUND, "Path not found; use /app/{key}")


def peer_address(transport: asyncio.BaseTransport) -> str | None:
    """The peer's address as the web library's `request.remote` gives it."""
    peername = transport.get_extra_info("peername")
    if peername is None:
        return None
    if isinstance(peername, list | tuple):
        return str(peername[0])
    return str(peername)


class Gate:
    """Opens a session on a new WebSocket, or refuses it."""

    def __init__(
        self,
        *,
        apps: AppStore,
        admission: Admission,
        registry: SessionRegistry,
        metrics: Metrics,
    ) -> None:
        self.apps = apps
        self.admission = admission
        self.registry = registry
        self.metrics = metrics

    async def open(self, socket: WebSocket, handshake: Handshake) -> None:
        """Start a session on `socket`, or refuse it; never raises."""
        try:
            opened = await self._session(socket, handshake)
            if isinstance(opened, Session):
                socket.start(opened)
            elif opened is not None:
                self.refuse(socket, opened)
        except Exception:
            log.exception("event=open_failed")
            socket.close(INTERNAL_ERROR, "Internal server error")
        finally:
            socket.uncork()

    def refuse(self, socket: WebSocket, refusal: Refusal) -> None:
        self.metrics.connection_refused(refusal.code)
        socket.refuse(refusal.code, refusal.reason)

    async def _session(self, socket: WebSocket, handshake: Handshake) -> Session | Refusal | None:
        """The new session, the first refusal, or None when the socket is already over."""
        refusal = protocol_problem(handshake.query)
        if refusal is not None:
            return refusal
        app = await self.apps.find_by_key(handshake.key)
        if app is None:
            return APP_NOT_FOUND
        if not origin_allowed(handshake.origin, app.allowed_origins):
            return ORIGIN_NOT_ALLOWED
        peer = peer_address(socket.transport)
        refusal = await self.admission.admit(app, peer, handshake.forwarded_for)
        if refusal is not None:
            return refusal
        if socket.over:
            return None  # the client broke the protocol or left during the lookup
        return await self.registry.connect(app, socket)
