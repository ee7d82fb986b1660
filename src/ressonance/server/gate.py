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

Then the session starts on the socket. A socket must get there within `upgrade_timeout`
(`ConnectionLimits`, counted from the moment the gate has it): one still opening past it (a
stalled app store or shared state) is refused with 4100 by the sweep (`Gate.sweep`, once a
tick), and counted as dropped (`upgrade_timeout`).

Rules:
1. Every refusal is a `Refusal`: counted by code (`connections_refused`), logged (one INFO
   line with the app, the client's address and the reason, bounded by `RefusalLog`), then
   pusher:error with the code and a close with the same code. An opened session is one
   DEBUG line (socket id, app, address).
2. A failure while opening is logged and closes the socket with 1011; in every case the
   socket is uncorked at the end, so the 101, if corked with it, and the first frames leave
   in one write.
3. A socket the client broke or left while the app was looked up gets no session, and one
   already closing (refused when its opening timed out, or left) is not refused again.
4. No web library and nothing of the transport, the front door or the node (import-linter
   checks it): the peer's address is read from the socket's asyncio transport, and the gate
   is given the parts it uses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from ressonance.apps.base import AppStore
from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.handshake import Handshake, Refusal, origin_allowed, protocol_problem
from ressonance.server.admission import Admission
from ressonance.server.deadlines import Openings
from ressonance.server.metrics import Metrics
from ressonance.server.refusal_log import RefusalLog, quoted
from ressonance.server.registry import SessionRegistry
from ressonance.server.session import Session
from ressonance.server.websocket import INTERNAL_ERROR, WebSocket

log = logging.getLogger(__name__)

APP_NOT_FOUND: Final = Refusal(ErrorCode.APP_NOT_FOUND, "App key does not exist")
ORIGIN_NOT_ALLOWED: Final = Refusal(ErrorCode.UNAUTHORIZED, "Origin not allowed")
PATH_NOT_FOUND: Final = Refusal(ErrorCode.PATH_NOT_FOUND, "Path not found; use /app/{key}")
NOT_OPENED_IN_TIME: Final = Refusal(
    ErrorCode.OVER_CAPACITY, "Server over capacity: connection not opened in time"
)


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
        refusals: RefusalLog | None = None,
        openings: Openings[WebSocket] | None = None,
    ) -> None:
        """`refusals` logs what is refused (the node's; one of its own if None); `openings`
        times the sockets being opened (`upgrade_timeout`; the default when None)."""
        self.apps = apps
        self.admission = admission
        self.registry = registry
        self.metrics = metrics
        self.refusals = RefusalLog(admission.clock) if refusals is None else refusals
        self.openings: Openings[WebSocket] = Openings() if openings is None else openings

    async def open(self, socket: WebSocket, handshake: Handshake) -> None:
        """Start a session on `socket`, or refuse it; never raises."""
        self.openings.start(socket)
        try:
            opened, app = await self._session(socket, handshake)
            if isinstance(opened, Session):
                socket.start(opened)
                if log.isEnabledFor(logging.DEBUG):  # the address is parsed for it only
                    log.debug(
                        "event=connection_opened socket_id=%s app_id=%s address=%s",
                        opened.socket_id,
                        opened.connection.app.id,
                        self._address(socket, handshake),
                    )
            elif opened is not None:
                fields = _refusal_fields(opened, handshake)
                address = self._address(socket, handshake)
                self.refuse(socket, opened, app, address=address, **fields)
        except Exception:
            log.exception("event=open_failed")
            socket.close(INTERNAL_ERROR, "Internal server error")
        finally:
            self.openings.done(socket)
            socket.uncork()

    def _address(self, socket: WebSocket, handshake: Handshake) -> str:
        """The client's address, through trusted proxies (as admission counts it)."""
        peer = peer_address(socket.transport)
        return self.admission.proxies.client_ip(peer, handshake.forwarded_for)

    def refuse(
        self, socket: WebSocket, refusal: Refusal, app: App | None = None, **fields: str
    ) -> None:
        """Refuse `socket` (rule 1); `fields` go to the log line (the address by default)."""
        if socket.over:
            return  # closing already (refused when its opening timed out, or left)
        self.metrics.connection_refused(refusal.code)
        fields.setdefault("address", peer_address(socket.transport) or "-")
        app_id = None if app is None else app.id
        self.refusals.refused("connection", refusal.code, app_id, refusal.reason, **fields)
        socket.refuse(refusal.code, refusal.reason)

    def sweep(self) -> None:
        """One tick: refuse the sockets still opening past `upgrade_timeout`; report the
        refusals a full log window held back."""
        for socket in self.openings.tick():
            if socket.over:
                continue
            self.metrics.connection_dropped("upgrade_timeout")
            self.refuse(socket, NOT_OPENED_IN_TIME)
            socket.uncork()
        self.refusals.flush()

    async def _session(
        self, socket: WebSocket, handshake: Handshake
    ) -> tuple[Session | Refusal | None, App | None]:
        """The new session, the first refusal, or None when the socket is already over; and
        the app, once its key is known."""
        refusal = protocol_problem(handshake.query)
        if refusal is not None:
            return refusal, None
        app = await self.apps.find_by_key(handshake.key)
        if app is None:
            return APP_NOT_FOUND, None
        if not origin_allowed(handshake.origin, app.allowed_origins):
            return ORIGIN_NOT_ALLOWED, app
        peer = peer_address(socket.transport)
        refusal = await self.admission.admit(app, peer, handshake.forwarded_for)
        if refusal is not None:
            return refusal, app
        if socket.over:
            return None, app  # the client broke the protocol or left during the lookup
        return await self.registry.connect(app, socket), app


def _refusal_fields(refusal: Refusal, handshake: Handshake) -> dict[str, str]:
    """What a refusal's log line says besides the reason: the key or the Origin refused."""
    if refusal is APP_NOT_FOUND:
        return {"key": quoted(handshake.key)}
    if refusal is ORIGIN_NOT_ALLOWED:
        return {"origin": quoted(handshake.origin or "")}
    return {}
