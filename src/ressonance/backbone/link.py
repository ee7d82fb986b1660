"""What the networked backbones share about their connection to the broker.

- `Backoff`: the wait before reconnect attempt n, exponential with jitter, so a broker that
  comes back is not hit by every node at the same instant.
- `LinkState`: the healthy flag and its state-change log lines (key=value); a state is logged
  when it changes, never per message.
- `deliver`: one received payload to the node, if it is a topic the node still wants.
- `cancel_and_wait`: stop a connection task for good.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from ressonance.backbone.base import MessageHandler, Topic
from ressonance.backbone.wire import WireError, decode_message
from ressonance.protocol.urls import redacted_url

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt `n` (0-based): uniform in [d/2, d], d = min(cap, base * 2**n).

    `uniform` draws from [0, 1); tests pass a fixed one.
    """

    base: float = 0.1
    cap: float = 5.0
    uniform: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        ceiling: float = min(self.cap, self.base * 2 ** min(attempt, 32))
        return ceiling / 2 + self.uniform() * ceiling / 2


async def cancel_and_wait(task: asyncio.Task[None], patience: float = 1.0) -> None:
    """Cancel `task` and wait until it has ended.

    Cancels again while it runs on: in Python 3.11, `asyncio.wait_for` (which client
    libraries use around socket writes) can swallow a cancellation that arrives just as
    the wrapped call completes, and the task would carry on serving its connection.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=patience)
    if not task.cancelled() and task.exception() is not None:
        log.error("event=backbone_task_failed", exc_info=task.exception())


def deliver(data: bytes, wanted: Container[Topic], handler: MessageHandler, backend: str) -> None:
    """Decode `data` and hand it to `handler` if its topic is `wanted`.

    A topic unsubscribed a moment ago can still have messages in flight; they stop here.
    Neither a corrupt payload nor a failing handler may stop the connection's reader.
    """
    try:
        message = decode_message(data)
    except WireError as exc:
        log.warning("event=backbone_bad_message backend=%s error=%r", backend, str(exc))
        return
    if message.topic not in wanted:
        return
    try:
        handler(message)
    except Exception:
        topic = message.topic.name
        log.exception("event=backbone_deliver_failed backend=%s topic=%s", backend, topic)


class LinkState:
    """Whether a backbone's broker connection is up, with one log line per change."""

    def __init__(self, logger: logging.Logger, backend: str, url: str) -> None:
        self._log = logger
        self._backend = backend
        self._url = redacted_url(url)
        self.healthy = False
        self._down_since: float | None = None

    def up(self, topics: int) -> None:
        if self.healthy:
            return
        self.healthy = True
        if self._down_since is None:
            self._log.info("event=backbone_connected backend=%s url=%s", self._backend, self._url)
            return
        downtime = time.monotonic() - self._down_since
        self._down_since = None
        self._log.warning(
            "event=backbone_reconnected backend=%s url=%s topics=%d downtime_s=%.3f",
            self._backend,
            self._url,
            topics,
            downtime,
        )

    def down(self, error: BaseException | str) -> None:
        if not self.healthy:
            return
        self.healthy = False
        self._down_since = time.monotonic()
        self._log.warning(
            "event=backbone_disconnected backend=%s url=%s error=%r",
            self._backend,
            self._url,
            _describe(error),
        )

    def retry_failed(self, attempt: int, wait: float, error: BaseException) -> None:
        self._log.warning(
            "event=backbone_reconnect_failed backend=%s url=%s attempt=%d retry_in_s=%.3f error=%r",
            self._backend,
            self._url,
            attempt,
            wait,
            _describe(error),
        )

    def closed(self) -> None:
        self.healthy = False
        self._log.info("event=backbone_closed backend=%s url=%s", self._backend, self._url)


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    return f"{type(error).__name__}: {error}"
