"""The webhook sender of a node: flushes the queue's buffer and works the lanes it can claim.

Data flow: a transition records its events in the durable queue (state/) as part of the
transition; this reads them back per lane (one lane per endpoint of an app), batches, signs
and sends them (server/webhook_lane.py) through the guarded client
(server/webhook_client.py). Publishing, subscribing and fanout never wait for any of it.

Rules:
1. Group commit: the queue calls `wake` when its buffer stops being empty; the buffer is
   written `flush_interval` later, in one write. A node that crashes loses what waits in
   it: at most `flush_interval` (5 ms) of events, plus the one write in progress. A failed
   write is kept and tried again every `FLUSH_RETRY` seconds (logged once per outage).
2. Every `poll_interval` the lanes that may hold events are listed and those no node holds
   are claimed, a dead node's once their leases end; each claimed lane gets a `LaneWorker`.
3. The depth metrics of the lanes worked here are refreshed every `DEPTH_INTERVAL` seconds.
4. Stopping cancels the workers, gives their leases up (another node takes over at once) and
   writes the buffer a last time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from ressonance.apps.base import AppStore
from ressonance.protocol.webhooks import lane_app
from ressonance.server.webhook_client import WebhookClient
from ressonance.server.webhook_lane import LaneWorker
from ressonance.server.webhook_metrics import WebhookMetrics
from ressonance.server.webhook_networks import NetworkPolicy
from ressonance.server.webhook_settings import WebhookSettings
from ressonance.state.base import WebhookQueue

log = logging.getLogger(__name__)

DEPTH_INTERVAL: Final = 5.0
FLUSH_RETRY: Final = 0.5  # seconds between writes of the buffer while the queue refuses them


class WebhookSender:
    """Sends one node's share of the cluster's webhooks; `run` until cancelled."""

    def __init__(
        self,
        *,
        queue: WebhookQueue,
        apps: AppStore,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.apps = apps
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.policy = NetworkPolicy.parse(settings.allowed_networks)
        self.workers: dict[str, LaneWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._flush_pending = False
        self._flush_failing = False
        self._scan_failing = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._client: WebhookClient | None = None
        self._depth_at = 0.0

    async def run(self) -> None:
        await self.queue.open()
        self.queue.wake = self.wake
        self._client = WebhookClient(self.policy, self.settings.timeout)
        try:
            await self._flush()  # what was recorded before the sender started
            while True:
                await self._scan()
                await asyncio.sleep(self.settings.poll_interval)
        finally:
            await self._stop()

    # --- the buffer ---------------------------------------------------------------------

    def wake(self, delay: float | None = None) -> None:
        """The queue buffered its first event since the last flush: flush soon."""
        if self._flush_pending:
            return
        self._flush_pending = True
        loop = asyncio.get_running_loop()
        wait = self.settings.flush_interval if delay is None else delay
        self._flush_timer = loop.call_later(wait, self._start_flush)

    def _start_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        self._flush_pending = False
        try:
            await self.queue.flush()
        except Exception as exc:
            if not self._flush_failing:
                log.warning("event=webhook_queue_unwritable error=%r", exc)
            self._flush_failing = True
            self.wake(FLUSH_RETRY)  # kept in the buffer: try again
            return
        if self._flush_failing:
            log.warning("event=webhook_queue_writable")
        self._flush_failing = False
        self.metrics.dropped_buffer = int(getattr(self.queue, "dropped", 0))
        for worker in self.workers.values():  # new events of this node: no need to poll
            worker.wakeup.set()

    # --- lanes --------------------------------------------------------------------------

    async def _scan(self) -> None:
        """Claim the free lanes and refresh the metrics; a store outage is logged once."""
        try:
            await self._claim_lanes()
            await self._refresh_depth()
        except Exception as exc:  # tried again at the next poll
            if not self._scan_failing:
                log.warning("event=webhook_scan_failed error=%r", exc)
            self._scan_failing = True
            return
        self._scan_failing = False

    async def _claim_lanes(self) -> None:
        for lane in await self.queue.lanes():
            if lane in self.workers or not await self.queue.claim(lane):
                continue
            assert self._client is not None
            worker = LaneWorker(
                lane,
                queue=self.queue,
                apps=self.apps,
                client=self._client,
                settings=self.settings,
                metrics=self.metrics,
                clock=self.clock,
            )
            self.workers[lane] = worker
            task = asyncio.create_task(self._work(lane, worker))
            self._tasks[lane] = task

    async def _work(self, lane: str, worker: LaneWorker) -> None:
        try:
            await worker.run()
        except Exception as exc:  # a store outage: the lane is claimed again at a later poll
            log.warning("event=webhook_lane_failed app_id=%s error=%r", lane_app(lane), exc)
        finally:
            self.workers.pop(lane, None)
            self._tasks.pop(lane, None)
            self.metrics.endpoints.pop(lane, None)

    async def _refresh_depth(self) -> None:
        now = self.clock()
        for lane, worker in self.workers.items():
            self.metrics.endpoints[lane] = worker.health.state
        if now < self._depth_at:
            return
        self._depth_at = now + DEPTH_INTERVAL
        depths = await self.queue.depth(list(self.workers))
        totals: dict[str, tuple[int, float]] = {}
        for lane, depth in depths.items():
            app_id = lane_app(lane)
            count, age = totals.get(app_id, (0, 0.0))
            oldest = now - depth.oldest_ms / 1000 if depth.events else 0.0
            totals[app_id] = (count + depth.events, max(age, oldest))
        self.metrics.depth = totals

    async def _stop(self) -> None:
        tasks = list(self._tasks.items())
        for _, task in tasks:
            task.cancel()
        for lane, task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.queue.release(lane)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for flush in list(self._flushes):
            with contextlib.suppress(Exception):
                await flush
        with contextlib.suppress(Exception):
            await self.queue.flush()
        self.queue.wake = lambda: None
        if self._client is not None:
            await self._client.close()
