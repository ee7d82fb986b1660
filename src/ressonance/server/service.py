"""Running a node on a port until SIGTERM or SIGINT, then stopping it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable

from ressonance.apps.memory import MemoryAppStore
from ressonance.backbone.memory import MemoryBackbone
from ressonance.cache.memory import MemoryCacheStore
from ressonance.presence.memory import MemoryPresenceStore
from ressonance.protocol.app import App
from ressonance.ratelimit.memory import MemoryRateLimiter
from ressonance.server.node import Node
from ressonance.server.transport import Transport, TransportLimits

log = logging.getLogger(__name__)


def memory_node(
    apps: Iterable[App], clock: Callable[[], float] = time.time, max_buffer_bytes: int = 1 << 20
) -> Node:
    """A node with every store in memory: one process, nothing shared."""
    return Node(
        apps=MemoryAppStore(apps),
        backbone=MemoryBackbone(),
        presence=MemoryPresenceStore(),
        cache=MemoryCacheStore(clock),
        limiter=MemoryRateLimiter(clock),
        clock=clock,
        max_buffer_bytes=max_buffer_bytes,
    )


async def serve(
    node: Node,
    *,
    host: str,
    port: int,
    limits: TransportLimits,
    timer_interval: float,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve `node` on host:port until a stop signal arrives."""
    transport = Transport(node, limits)
    await node.start()
    await transport.listen(host, port)
    timers = asyncio.create_task(node.run_timers(timer_interval))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("event=listening host=%s port=%d node_id=%s", host, port, node.node_id)
    on_ready()
    await stop.wait()
    log.info("event=stopping")
    timers.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await timers
    await node.stop()
    await transport.close()
    log.info("event=stopped")
