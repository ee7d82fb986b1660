"""Building a node from backend URLs, and running it until a stop signal, then draining.

The wiring of a node's outer ring lives here too: the HTTP API, the gate with its admission,
the sockets, the liveness loop and the transport around them are each given the parts of
the node they use (`http_api`, `gate`, `sockets`, `liveness`, `transport`); none of them
sees the node. The tests build the outer ring with the same functions.

Stopping (SIGTERM or SIGINT) drains: /readyz turns false, the listener closes, and clients
are told to reconnect elsewhere with close code 4200, spread over `drain_seconds` so that
thousands of pusher-js clients (which reconnect at once after 4200) do not stampede the
next node. In-flight HTTP requests finish; the node's shared state is removed as its
connections close; the process then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ressonance.apps.base import AppStore
from ressonance.apps.catalog import AppCatalog
from ressonance.apps.memory import MemoryAppStore
from ressonance.backbone import create_backbone
from ressonance.backbone.base import Backbone
from ressonance.backbone.memory import MemoryBackbone
from ressonance.backbone.wire import VERSION as WIRE_VERSION
from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.server.admin_api import AdminApi
from ressonance.server.admission import Admission, AdmissionLimits
from ressonance.server.deadlines import Openings
from ressonance.server.gate import Gate
from ressonance.server.http_api import HttpApi
from ressonance.server.idempotency import IdempotentPublishes
from ressonance.server.limits import ConnectionLimits
from ressonance.server.liveness import Liveness
from ressonance.server.metrics import Metrics
from ressonance.server.node import Node
from ressonance.server.tls import Certificate
from ressonance.server.transport import Transport, TransportLimits
from ressonance.server.webhook_metrics import WebhookMetrics
from ressonance.server.webhook_settings import WebhookSettings
from ressonance.server.webhooks import WebhookSender
from ressonance.server.websocket import Sockets
from ressonance.state import open_state
from ressonance.state.base import SharedState
from ressonance.state.memory import MemoryRateLimiter

log = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 10.0


def memory_node(
    apps: Iterable[App],
    clock: Callable[[], float] = time.time,
    max_buffer_bytes: int = 1 << 20,
    max_buffer_messages: int = 4096,
    metrics: Metrics | None = None,
) -> Node:
    """A node with every store in memory: one process, nothing shared."""
    node_id = secrets.token_hex(8)
    return _node(
        MemoryAppStore(apps),
        MemoryBackbone(),
        open_state("memory://", node_id=node_id, clock=clock),
        node_id=node_id,
        clock=clock,
        max_buffer_bytes=max_buffer_bytes,
        max_buffer_messages=max_buffer_messages,
        metrics=metrics,
    )


def build_node(
    apps: AppStore,
    *,
    backbone_url: str,
    state_url: str,
    prefix: str = "ressonance",
    node_ttl: float = 10.0,
    wire_version: int = WIRE_VERSION,
    max_buffer_bytes: int = 1 << 20,
    max_buffer_messages: int = 4096,
    clock: Callable[[], float] = time.time,
    state_dir: Path | None = None,
    webhook_leave_delay: float = 3.0,
) -> Node:
    """A node whose backbone and shared state are picked by URL scheme, serving `apps`.

    `state_dir` holds a single node's webhook queue (in memory without one)."""
    node_id = secrets.token_hex(8)
    state = open_state(
        state_url,
        node_id=node_id,
        clock=clock,
        prefix=prefix,
        node_ttl=node_ttl,
        state_dir=state_dir,
        leave_delay=webhook_leave_delay,
    )
    return _node(
        apps,
        create_backbone(backbone_url, prefix=prefix, wire_version=wire_version),
        state,
        node_id=node_id,
        clock=clock,
        max_buffer_bytes=max_buffer_bytes,
        max_buffer_messages=max_buffer_messages,
    )


def _node(
    apps: AppStore,
    backbone: Backbone,
    state: SharedState,
    *,
    node_id: str,
    clock: Callable[[], float],
    max_buffer_bytes: int,
    max_buffer_messages: int,
    metrics: Metrics | None = None,
) -> Node:
    return Node(
        apps=apps,
        backbone=backbone,
        presence=state.presence,
        cache=state.cache,
        limiter=MemoryRateLimiter(clock),  # per connection: a connection lives on one node
        clock=clock,
        max_buffer_bytes=max_buffer_bytes,
        max_buffer_messages=max_buffer_messages,
        node_id=node_id,
        metrics=metrics,
        usage=state.usage,
        shared_limiter=state.limiter,
        connections=state.connections,
        membership=state.membership,
        history=state.history,
        idempotency=state.idempotency,
        close_state=state.close,
        webhooks=state.webhooks,
    )


def http_api(node: Node) -> HttpApi:
    """The HTTP API of `node`."""
    return HttpApi(
        apps=node.apps,
        presence=node.presence,
        cache=node.cache,
        quotas=node.quotas,
        users=node.users,
        publish=node.publish,
        metrics=node.metrics,
        readiness=node.readiness,
        history=node.history,
        idempotency=IdempotentPublishes(store=node.idempotency, metrics=node.metrics),
        clock=node.clock,
        refusals=node.refusals,
    )


def gate(
    node: Node, limits: AdmissionLimits | None = None, connections: ConnectionLimits | None = None
) -> Gate:
    """The opening policy of new WebSockets to `node`, its admission under `limits` and its
    `upgrade_timeout` from `connections` (the defaults when None)."""
    admission = Admission(
        limits,
        sessions=node.registry.sessions,
        metrics=node.metrics,
        clock=node.clock,
        limiter=node.quotas.limiter,  # app-wide: shared by every node of a cluster
    )
    return Gate(
        apps=node.apps,
        admission=admission,
        registry=node.registry,
        metrics=node.metrics,
        refusals=node.refusals,
        openings=Openings(connections),
    )


def sockets(node: Node, max_message_bytes: int) -> Sockets:
    """The taken-over WebSockets of `node`, each taking messages up to `max_message_bytes`."""
    return Sockets(
        receive=node.receive,
        registry=node.registry,
        clock=node.clock,
        max_message_bytes=max_message_bytes,
    )


def liveness(node: Node) -> Liveness:
    """The heartbeat, reaping and resync of `node` over its shared state."""
    return Liveness(
        node_id=node.node_id,
        membership=node.membership,
        registry=node.registry,
        presence=node.presence,
        connections=node.connections,
        quotas=node.quotas,
        readiness=node.readiness,
        announce_departures=node.announce_departures,
        webhook_events=node.webhook_events,
    )


def webhook_sender(node: Node, settings: WebhookSettings | None = None) -> WebhookSender:
    """The sender of `node`'s webhooks from its queue, as `settings` says (the defaults)."""
    return WebhookSender(
        queue=node.webhooks,
        apps=node.apps,
        settings=settings or WebhookSettings(),
        metrics=WebhookMetrics(node.metrics.registry),
    )


def transport(
    node: Node,
    limits: TransportLimits,
    admission_limits: AdmissionLimits | None = None,
    admin: AdminApi | None = None,
    connections: ConnectionLimits | None = None,
) -> Transport:
    """The aiohttp application serving `node`'s outer ring (and `admin`, when given), each
    connection bounded by `connections` until it is a session (the defaults when None)."""
    return Transport(
        api=http_api(node),
        gate=gate(node, admission_limits, connections),
        sockets=sockets(node, limits.max_ws_message_bytes),
        readiness=node.readiness,
        metrics=node.metrics,
        limits=limits,
        admin=admin,
        connections=connections,
    )


async def serve(
    node: Node,
    *,
    host: str,
    port: int,
    limits: TransportLimits,
    admission: AdmissionLimits | None = None,
    timer_interval: float = 1.0,
    liveness_interval: float = 2.0,
    drain_seconds: float = 10.0,
    reuse_port: bool = False,
    certificate: Certificate | None = None,
    catalog: AppCatalog | None = None,
    apps_refresh_seconds: float = 1.0,
    admin: AdminApi | None = None,
    webhooks: WebhookSettings | None = None,
    on_ready: Callable[[], None] = lambda: None,
    connections: ConnectionLimits | None = None,
) -> None:
    """Serve `node` on host:port until a stop signal arrives, then drain and stop.

    With `certificate`, the port serves TLS, and SIGHUP reloads the certificate and key files
    (new handshakes use them; established connections are not touched).

    With `catalog` (the node's app store, loaded), the registry behind it is polled every
    `apps_refresh_seconds` until the node stops; changed apps reach it through
    `SessionRegistry.apps_changed`. Whoever opened the registry closes it. With `admin`, the
    port serves the admin API under /admin/v1. `connections` bounds every connection until it
    is a session (deadlines, head sizes, per-address and descriptor limits). The node's
    webhooks are sent as `webhooks` says (the defaults when None) until the node has drained.
    """
    served = transport(node, limits, admission, admin, connections)
    if catalog is not None:
        catalog.on_change = node.registry.apps_changed
    await node.start()
    await node.webhooks.open()  # before the first connection records an event in it
    ssl_context = certificate.context if certificate is not None else None
    await served.listen(host, port, reuse_port=reuse_port, ssl_context=ssl_context)
    tasks = [
        asyncio.create_task(node.run_timers(timer_interval)),
        asyncio.create_task(liveness(node).run(liveness_interval)),
        asyncio.create_task(webhook_sender(node, webhooks).run()),
    ]
    if catalog is not None:
        tasks.append(asyncio.create_task(catalog.run(apps_refresh_seconds)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if certificate is not None:
        loop.add_signal_handler(signal.SIGHUP, certificate.reload)
    log.info(
        "event=listening host=%s port=%d tls=%s node_id=%s",
        host,
        port,
        "on" if certificate is not None else "off",
        node.node_id,
    )
    on_ready()
    await stop.wait()
    sessions = node.registry.sessions
    log.info("event=draining connections=%d window_s=%.1f", len(sessions), drain_seconds)
    node.readiness.draining = True
    await served.stop_accepting()
    await drain(node, drain_seconds)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await served.close()
    await node.stop()
    log.info("event=stopped")


async def drain(node: Node, window: float) -> None:
    """Close every session with 4200, spread evenly over `window` seconds, and wait."""
    sessions = list(node.registry.sessions.values())
    loop = asyncio.get_running_loop()
    for index, session in enumerate(sessions):
        delay = window * index / len(sessions)
        loop.call_later(
            delay, session.close, ErrorCode.GENERIC_RECONNECT, "Server is restarting; reconnect"
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(node.registry.wait_empty(), window + CLOSE_GRACE_SECONDS)
