"""One endpoint's lane, worked by the node that holds its lease: batches, retries, order.

Rules:
1. Lease: renewed every third of its TTL; a lost lease stops the worker at once (its
   requests are cancelled: the next holder sends them again, at least once).
2. Batches: up to `batch_size` events, sent when full or when the oldest has waited
   `batch_wait`; at most `concurrency` requests at a time. A delayed event (vacated,
   member_removed, a throttled count) joins a batch once due and fired (`WebhookQueue.fire`),
   and does not hold back the events after it.
3. Order per channel: while a batch is in flight or waiting to be retried, the later events
   of its channels wait; other channels go on.
4. Retries: any answer but 2xx, and any network failure, is retried after an exponential
   backoff (`retry_initial` doubling up to `retry_max`, times a random 0.5-1 jitter), or the
   `Retry-After` of a 429 or 503; each attempt is signed again with a fresh `time_ms`. An
   event still undelivered `retry_window` after it happened goes to the dead letters.
5. Circuit breaker (`EndpointHealth`): after `circuit_failures` failed requests in a row
   the endpoint's circuit opens: no new batch starts, one retry at a time probes it; a 2xx
   closes it. Each change of state is one log line. A lane's work never waits for another's.
6. What is logged names the app, the endpoint id and the status; never the URL's query, a
   header value, the secret or a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ressonance.apps.base import AppStore
from ressonance.protocol.signing import webhook_signature
from ressonance.protocol.webhooks import (
    CONTENT_TYPE,
    WebhookEndpoint,
    lane_app,
    lane_endpoint,
    webhook_body,
)
from ressonance.server.webhook_client import Answer, WebhookClient
from ressonance.server.webhook_metrics import WebhookMetrics
from ressonance.server.webhook_settings import WebhookSettings
from ressonance.state.base import DeliveryAttempt, QueuedEvent, WebhookQueue

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Batch:
    events: list[QueuedEvent]
    attempts: int = 0
    retry_at: float = 0.0
    sending: bool = False
    channels: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.channels = {event.channel for event in self.events}

    @property
    def oldest_ms(self) -> int:
        return min(event.produced_ms for event in self.events)


class EndpointHealth:
    """healthy -> failing (a request failed) -> circuit_open (`threshold` in a row)."""

    def __init__(self, lane: str, threshold: int) -> None:
        self.lane = lane
        self.threshold = threshold
        self.failures = 0
        self.state = "healthy"

    def answered(self, answer: Answer) -> None:
        self.failures = 0 if answer.delivered else self.failures + 1
        if answer.delivered:
            state = "healthy"
        else:
            state = "circuit_open" if self.failures >= self.threshold else "failing"
        if state != self.state:
            self.state = state
            level = logging.INFO if state == "healthy" else logging.WARNING
            log.log(
                level,
                "event=webhook_endpoint_state app_id=%s endpoint=%s state=%s failures=%d last=%s",
                lane_app(self.lane),
                lane_endpoint(self.lane),
                state,
                self.failures,
                answer.error or answer.status,
            )


class LaneWorker:
    """Sends the events of one lane while this node holds its lease."""

    def __init__(
        self,
        lane: str,
        *,
        queue: WebhookQueue,
        apps: AppStore,
        client: WebhookClient,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.lane = lane
        self.queue = queue
        self.apps = apps
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.health = EndpointHealth(lane, settings.circuit_failures)
        self.pending: list[QueuedEvent] = []
        self.batches: list[Batch] = []
        self.wakeup = asyncio.Event()
        self._after = ""
        self._fired: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._renew_at = 0.0
        self._wait_until = 0.0  # a batch that is not full waits for more until then
        self._idle_since: float | None = None

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Work the lane until the lease is lost or the lane stays empty; then return."""
        try:
            while await self._step():
                await self._sleep()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _step(self) -> bool:
        now = self.clock()
        if now >= self._renew_at:
            if not await self.queue.claim(self.lane):
                return False
            self._renew_at = now + self.settings.lease_ttl / 3
        await self._refill()
        await self._expire(now)
        await self._dispatch(now)
        if self.pending or self.batches:
            self._idle_since = None
            return True
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since >= self.settings.idle_release:
            return not await self.queue.release(self.lane, if_empty=True)
        return True

    async def _sleep(self) -> None:
        """Until the next thing to do (a finished request wakes it up), or a poll."""
        now = self.clock()
        deadlines = [self._renew_at, self._wait_until]
        deadlines += [b.retry_at for b in self.batches if not b.sending]
        deadlines += [e.due_ms / 1000 for e in self.pending if e.due_ms]
        future = [d for d in deadlines if d > now]
        timeout = min([*future, now + self.settings.poll_interval]) - now
        self.wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout)

    async def _refill(self) -> None:
        room = self.settings.read_ahead - len(self.pending)
        if room < self.settings.read_ahead // 2:
            return
        read = await self.queue.read(self.lane, self._after, room)
        if read:
            self.pending += read
            self._after = read[-1].position

    # --- dead letters -------------------------------------------------------------------

    async def _expire(self, now: float) -> None:
        """Events past the retry window that wait behind others, or were never tried."""
        deadline_ms = (now - self.settings.retry_window) * 1000
        old = [e for e in self.pending if e.produced_ms <= deadline_ms]
        if old:
            self.pending = [e for e in self.pending if e.produced_ms > deadline_ms]
            await self._give_up(old, "retry window ended before it could be sent")

    async def _give_up(self, events: list[QueuedEvent], reason: str) -> None:
        await self.queue.dead_letter(self.lane, events, reason, int(self.clock() * 1000))
        self.metrics.counted(lane_app(self.lane), "dead_lettered", len(events))
        log.warning(
            "event=webhook_dead_letter app_id=%s endpoint=%s events=%d reason=%r",
            lane_app(self.lane),
            lane_endpoint(self.lane),
            len(events),
            reason,
        )

    # --- batches ------------------------------------------------------------------------

    async def _dispatch(self, now: float) -> None:
        sending = sum(1 for b in self.batches if b.sending)
        limit = 1 if self.health.state == "circuit_open" else self.settings.concurrency
        for batch in sorted(self.batches, key=lambda b: b.retry_at):
            if sending >= limit:
                return
            if not batch.sending and batch.retry_at <= now:
                self._start(batch)
                sending += 1
        # An open circuit starts no batch, unless none is left to probe it with.
        while sending < limit and (self.health.state != "circuit_open" or not self.batches):
            formed = await self._form(now)
            if formed is None:
                return
            self.batches.append(formed)
            self._start(formed)
            sending += 1

    def _ready_at(self, event: QueuedEvent) -> float:
        return max(event.produced_ms, event.due_ms) / 1000 + self.settings.batch_wait

    async def _form(self, now: float) -> Batch | None:
        held = {channel for batch in self.batches for channel in batch.channels}
        chosen: list[QueuedEvent] = []
        for event in list(self.pending):
            if len(chosen) >= self.settings.batch_size:
                break
            if event.channel in held:
                continue
            if event.due_ms and event.position not in self._fired:
                if event.due_ms > now * 1000:
                    continue  # not due: later events of its channel go on
                if not await self.queue.fire(self.lane, event):
                    self.pending.remove(event)  # cancelled: the channel or user came back
                    continue
                self._fired.add(event.position)
            chosen.append(event)
        if not chosen:
            return None
        if len(chosen) < self.settings.batch_size and self._ready_at(chosen[0]) > now:
            self._wait_until = self._ready_at(chosen[0])
            return None  # wait a little for more
        taken = {event.position for event in chosen}
        self.pending = [e for e in self.pending if e.position not in taken]
        self._fired -= taken
        return Batch(chosen)

    def _start(self, batch: Batch) -> None:
        batch.sending = True
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("event=webhook_send_failed lane=%s error=%r", self.lane, task.exception())

    # --- one request --------------------------------------------------------------------

    async def _send(self, batch: Batch) -> None:
        try:
            endpoint, key, secret = await self._endpoint()
            if endpoint is None:
                await self._drop(batch)
                return
            answer = await self._post(batch, endpoint, key, secret)
            self.health.answered(answer)
            if answer.delivered:
                await self._delivered(batch)
            else:
                await self._failed(batch, answer)
        finally:
            batch.sending = False

    async def _endpoint(self) -> tuple[WebhookEndpoint | None, str, str]:
        app = await self.apps.find_by_id(lane_app(self.lane))
        wanted = lane_endpoint(self.lane)
        for endpoint in app.webhooks if app is not None else ():
            if endpoint.id == wanted:
                assert app is not None
                return endpoint, app.key, app.secret
        return None, "", ""

    async def _post(self, batch: Batch, endpoint: WebhookEndpoint, key: str, secret: str) -> Answer:
        started = time.perf_counter()
        now_ms = int(self.clock() * 1000)
        body = webhook_body(now_ms, [event.event for event in batch.events])
        headers = {
            **dict(endpoint.headers),
            "Content-Type": CONTENT_TYPE,
            "X-Pusher-Key": key,
            "X-Pusher-Signature": webhook_signature(secret, body),
        }
        answer = await self.client.post(endpoint.url, body, headers)
        latency_ms = int((time.perf_counter() - started) * 1000)
        attempt = DeliveryAttempt(
            now_ms, answer.status, latency_ms, len(batch.events), answer.error
        )
        await self.queue.record_attempt(self.lane, attempt)
        return answer

    async def _delivered(self, batch: Batch) -> None:
        await self.queue.done(self.lane, [event.position for event in batch.events])
        self.batches.remove(batch)
        now = self.clock()
        self.metrics.counted(lane_app(self.lane), "delivered", len(batch.events))
        self.metrics.delivered_after([now - e.produced_ms / 1000 for e in batch.events])

    async def _failed(self, batch: Batch, answer: Answer) -> None:
        now = self.clock()
        batch.attempts += 1
        deadline = batch.oldest_ms / 1000 + self.settings.retry_window
        if now >= deadline:
            self.batches.remove(batch)
            await self._give_up(batch.events, f"retry window ended: {answer.error}")
            return
        self.metrics.counted(lane_app(self.lane), "failed", len(batch.events))
        wait = answer.retry_after
        if wait is None:
            backoff = self.settings.retry_initial * 2 ** min(batch.attempts - 1, 30)
            wait = min(self.settings.retry_max, backoff) * self.rng.uniform(0.5, 1.0)
        batch.retry_at = min(now + wait, deadline)

    async def _drop(self, batch: Batch) -> None:
        """The endpoint (or its app) is no longer configured: nowhere to send them."""
        await self.queue.done(self.lane, [event.position for event in batch.events])
        self.batches.remove(batch)
        self.metrics.counted(lane_app(self.lane), "dropped", len(batch.events))
        log.warning(
            "event=webhook_endpoint_gone app_id=%s endpoint=%s dropped=%d",
            lane_app(self.lane),
            lane_endpoint(self.lane),
            len(batch.events),
        )
