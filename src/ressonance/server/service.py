"""Building a node from backend URLs, and running it until a stop signal, then draining.

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

from ressonance.apps.base import AppStore
from ressonance.apps.catalog import AppCatalog
from ressonance.apps.memory import MemoryAppStore
from ressonance.backbone.memory import MemoryBackbone
from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.server.admin_api import AdminApi
from ressonance.server.admission import AdmissionLimits
from ressonance.server.limits import ConnectionLimits
from ressonance.server.liveness import run_liveness
from ressonance.server.metrics import Metrics
from ressonance.server.node import Node
from ressonance.server.tls import Certificate
from ressonance.server.transport import Transport, TransportLimits
from ressonance.state.memory import MemoryCacheStore, MemoryPresenceStore, MemoryRateLimiter

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
    return _memory_node(MemoryAppStore(apps), clock, max_buffer_bytes, max_buffer_messages, metrics)


def _memory_node(
    apps: AppStore,
    clock: Callable[[], float],
    max_buffer_bytes: int,
    max_buffer_messages: int,
    metrics: Metrics | None = None,
) -> Node:
    return Node(
        apps=apps,
        backbone=MemoryBackbone(),
        presence=MemoryPresenceStore(),
        cache=MemoryCacheStore(clock),
        limiter=MemoryRateLimiter(clock),
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
    max_buffer_bytes: int = 1 << 20,
    max_buffer_messages: int = 4096,
    clock: Callable[[], float] = time.time,
) -> Node:
    """A node whose backbone and shared state are picked by URL scheme, serving `apps`."""
    if backbone_url.startswith("memory://") and state_url.startswith("memory://"):
        return _memory_node(apps, clock, max_buffer_bytes, max_buffer_messages)
    from ressonance.backbone import create_backbone
    from ressonance.state.redis_cache import RedisCacheStore
    from ressonance.state.redis_connections import RedisConnectionCounter
    from ressonance.state.redis_presence import RedisPresenceStore, connect
    from ressonance.state.redis_ratelimit import RedisRateLimiter
    from ressonance.state.redis_usage import RedisUsageStore

    node_id = secrets.token_hex(8)
    redis = connect(state_url)
    return Node(
        apps=apps,
        backbone=create_backbone(backbone_url, prefix=prefix),
        presence=RedisPresenceStore(redis, node_id=node_id, prefix=prefix, node_ttl=node_ttl),
        cache=RedisCacheStore(redis, clock, prefix),
        limiter=MemoryRateLimiter(clock),  # per connection: a connection lives on one node
        clock=clock,
        max_buffer_bytes=max_buffer_bytes,
        max_buffer_messages=max_buffer_messages,
        node_id=node_id,
        usage=RedisUsageStore(redis, prefix),
        shared_limiter=RedisRateLimiter(redis, clock, prefix),
        connections=RedisConnectionCounter(
            redis, node_id=node_id, prefix=prefix, node_ttl=node_ttl
        ),
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
    on_ready: Callable[[], None] = lambda: None,
    connections: ConnectionLimits | None = None,
) -> None:
    """Serve `node` on host:port until a stop signal arrives, then drain and stop.

    With `certificate`, the port serves TLS, and SIGHUP reloads the certificate and key files
    (new handshakes use them; established connections are not touched).

    With `catalog` (the node's app store, loaded), the registry behind it is polled every
    `apps_refresh_seconds` until the node stops; changed apps reach it through
    `Node.apps_changed`. Whoever opened the registry closes it. With `admin`, the port serves
    the admin API under /admin/v1. `connections` bounds every connection until it is a
    session (deadlines, head sizes, per-address and descriptor limits).
    """
    transport = Transport(node, limits, admission, admin, connections)
    if catalog is not None:
        catalog.on_change = node.apps_changed
    await node.start()
    ssl_context = certificate.context if certificate is not None else None
    await transport.listen(host, port, reuse_port=reuse_port, ssl_context=ssl_context)
    tasks = [
        asyncio.create_task(node.run_timers(timer_interval)),
        asyncio.create_task(run_liveness(node, liveness_interval)),
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
    log.info("event=draining connections=%d window_s=%.1f", len(node.sessions), drain_seconds)
    node.draining = True
    await transport.stop_accepting()
    await drain(node, drain_seconds)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await transport.close()
    await node.stop()
    log.info("event=stopped")


async def drain(node: Node, window: float) -> None:
    """Close every session with 4200, spread evenly over `window` seconds, and wait."""
    sessions = list(node.sessions.values())
    loop = asyncio.get_running_loop()
    for index, session in enumerate(sessions):
        delay = window * index / len(sessions)
        loop.call_later(
            delay, session.close, ErrorCode.GENERIC_RECONNECT, "Server is restarting; reconnect"
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(node.wait_empty(), window + CLOSE_GRACE_SECONDS)
