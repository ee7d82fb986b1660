"""The Redis backbone: each topic is a Redis pub/sub channel, `<prefix>:<topic name>`.

Rules it keeps (on top of backbone/base.py):
- Interest-based: the node's subscriber connection SUBSCRIBEs only to live topics, and
  `subscribe` returns once Redis has confirmed, so a publish from any node after that is
  delivered. Pub/sub channels ignore the database number: the prefix keeps deployments apart.
- Order per topic per publisher: one publisher awaits each PUBLISH in turn; Redis delivers a
  channel's messages to a subscriber connection in the order it received them.
- At-most-once: Redis pub/sub keeps nothing for a disconnected subscriber.
- One subscriber connection, owned by this class, with redis-py's retries off (its Retry
  still runs one immediate reconnect before it raises; that connection is thrown away).
  When it is lost (error, or no reply to PING within two ping intervals) the backbone is
  unhealthy, reconnects with backoff and jitter, and SUBSCRIBEs every live topic again
  before it reports healthy.
- Publishes go over a separate pool that retries once, at once (a pooled connection may
  predate a Redis restart); while the subscriber connection is down they raise
  BackboneUnavailableError without trying.
- Messages are written in wire format `wire_version` (backbone/wire.py; the current one
  unless a node must be understood by nodes not yet upgraded); both versions are read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Literal

from ressonance.backbone.base import (
    BackboneMessage,
    BackboneUnavailableError,
    MessageHandler,
    Topic,
)
from ressonance.backbone.link import Backoff, LinkState, cancel_and_wait, deliver
from ressonance.backbone.wire import VERSION, encode_message
from ressonance.protocol.errors import ConfigError
from ressonance.protocol.urls import redacted_url

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

Command = Literal["subscribe", "unsubscribe"]


class RedisBackbone:
    """Topic pub/sub over Redis (or any server speaking its protocol, such as Valkey)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ressonance",
        backoff: Backoff | None = None,
        ping_interval: float = 5.0,
        timeout: float = 5.0,
        wire_version: int = VERSION,
    ) -> None:
        if find_spec("redis") is None:
            raise ConfigError(
                f"backbone {redacted_url(url)}: needs redis-py: pip install 'ressonance[redis]'"
            )
        self._url = url
        self._prefix = prefix + ":"
        self._backoff = backoff or Backoff()
        self._ping_interval = ping_interval
        self._timeout = timeout
        self._wire_version = wire_version
        self._state = LinkState(log, "redis", url)
        self._topics: set[Topic] = set()
        self._on_message: MessageHandler | None = None
        self._publisher: Redis | None = None
        self._subscriber: Redis | None = None
        self._pubsub: PubSub | None = None  # the live subscriber connection; None while down
        self._send_lock = asyncio.Lock()  # commands reach the wire in the order topics change
        self._acks: dict[tuple[str, bytes], deque[asyncio.Future[bool]]] = {}
        self._last_seen = 0.0
        self._up = asyncio.Event()  # set once the first connection is serving
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._state.healthy

    async def start(self, on_message: MessageHandler) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._on_message = on_message
        self._publisher = Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), 1),
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
        )
        # No socket timeout (redis-py 8 defaults to 5 s; redis-py 5 would then time out a
        # blocking read): the reader waits for messages; PING checks liveness instead.
        self._subscriber = Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=None,
            socket_connect_timeout=self._timeout,
        )
        try:
            pubsub = await self._connect()
        except (RedisError, OSError) as exc:
            await self._close_clients()
            raise BackboneUnavailableError(
                f"cannot reach {redacted_url(self._url)}: {exc}"
            ) from exc
        self._task = asyncio.create_task(self._run(pubsub), name="redis-backbone")
        try:
            async with asyncio.timeout(self._timeout):
                await self._up.wait()
        except TimeoutError:
            await self.close()
            raise BackboneUnavailableError(
                f"no working connection to {redacted_url(self._url)} in {self._timeout}s"
            ) from None

    async def publish(self, message: BackboneMessage) -> None:
        from redis.exceptions import RedisError

        if self._publisher is None or not self._state.healthy:
            raise BackboneUnavailableError(f"backbone {redacted_url(self._url)} is disconnected")
        try:
            payload = encode_message(message, self._wire_version)
            await self._publisher.publish(self._channel(message.topic), payload)
        except (RedisError, OSError) as exc:
            raise BackboneUnavailableError(
                f"publish to {redacted_url(self._url)} failed: {exc}"
            ) from exc

    async def subscribe(self, topic: Topic) -> None:
        if topic not in self._topics:
            self._topics.add(topic)
            await self._apply("subscribe", topic)

    async def unsubscribe(self, topic: Topic) -> None:
        if topic in self._topics:
            self._topics.discard(topic)
            await self._apply("unsubscribe", topic)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
            self._state.closed()
        await self._close_clients()
        self._topics.clear()
        self._on_message = None

    # --- the subscriber connection ------------------------------------------------------

    def _channel(self, topic: Topic) -> bytes:
        return (self._prefix + topic.name).encode()

    async def _connect(self) -> PubSub:
        assert self._subscriber is not None
        pubsub = self._subscriber.pubsub()
        try:
            async with asyncio.timeout(self._timeout):
                await pubsub.connect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except BaseException:
            await _discard(pubsub)
            raise
        return pubsub

    async def _run(self, pubsub: PubSub) -> None:
        """Keep a subscriber connection up for as long as the backbone is open."""
        while True:
            error = await self._session(pubsub)
            self._state.down(error)
            pubsub = await self._reconnect()

    async def _reconnect(self) -> PubSub:
        from redis.exceptions import RedisError

        attempt = 0
        wait = self._backoff.delay(attempt)
        while True:
            await asyncio.sleep(wait)
            try:
                return await self._connect()
            except (RedisError, OSError) as exc:
                attempt += 1
                wait = self._backoff.delay(attempt)
                self._state.retry_failed(attempt, wait, exc)

    async def _session(self, pubsub: PubSub) -> BaseException:
        """Serve one connection until it is lost; the error that ended it."""
        from redis.exceptions import RedisError

        self._last_seen = asyncio.get_running_loop().time()
        self._pubsub = pubsub
        reader = asyncio.create_task(self._read(pubsub))
        pinger = asyncio.create_task(self._keepalive(pubsub))
        try:
            async with self._send_lock:
                confirmed = await self._send(pubsub, "subscribe", self._topics)
            if not all(await asyncio.gather(*confirmed)):
                raise ConnectionError("connection lost while resubscribing")
            self._state.up(len(self._topics))
            self._up.set()
            done, _ = await asyncio.wait((reader, pinger), return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).exception() or ConnectionError("subscriber stopped")
        except (RedisError, OSError) as exc:
            return exc
        finally:
            self._pubsub = None
            for task in (reader, pinger):
                task.cancel()
            await asyncio.gather(reader, pinger, return_exceptions=True)
            self._release_acks()
            await _discard(pubsub)

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                self._last_seen = loop.time()
                if message is not None:
                    self._dispatch(message)
        finally:
            self._release_acks()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            if self._on_message is not None:
                deliver(message["data"], self._topics, self._on_message, "redis")
        elif kind in ("subscribe", "unsubscribe"):
            key = (kind, message["channel"])
            waiters = self._acks.get(key)
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._acks[key]
                if not waiter.done():  # cancelled when the subscribing task was
                    waiter.set_result(True)

    async def _keepalive(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            silent = loop.time() - self._last_seen
            if silent > 2 * self._ping_interval:
                raise ConnectionError(f"no reply from Redis in {silent:.1f}s")
            await pubsub.ping()

    # --- subscription commands ----------------------------------------------------------

    async def _apply(self, command: Command, topic: Topic) -> None:
        """Send one (UN)SUBSCRIBE and wait for Redis to confirm; while down, the next
        session's resubscribe applies the change instead."""
        from redis.exceptions import RedisError

        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            async with self._send_lock:
                confirmed = await self._send(pubsub, command, [topic])
            await asyncio.gather(*confirmed)
        except (RedisError, OSError) as exc:  # the session sees the loss and reconnects
            log.debug("event=backbone_command_failed backend=redis error=%r", exc)

    async def _send(
        self, pubsub: PubSub, command: Command, topics: Iterable[Topic]
    ) -> list[asyncio.Future[bool]]:
        """Send `command` for `topics`: one future per channel, true once Redis confirms it.

        Called under the send lock, so confirmations are expected in the order sent."""
        channels = [self._channel(topic) for topic in topics]
        if not channels:
            return []
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[bool]] = []
        for channel in channels:
            waiter = loop.create_future()
            self._acks.setdefault((command, channel), deque()).append(waiter)
            waiters.append(waiter)
        if command == "subscribe":
            await pubsub.subscribe(*channels)
        else:
            await pubsub.unsubscribe(*channels)
        return waiters

    def _release_acks(self) -> None:
        """The connection is gone: nothing pending will be confirmed on it."""
        acks, self._acks = self._acks, {}
        for waiters in acks.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)

    async def _close_clients(self) -> None:
        for client in (self._publisher, self._subscriber):
            if client is not None:
                await client.aclose()
        self._publisher = self._subscriber = None


async def _discard(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()
    except Exception:  # closing a broken connection may fail again; it is gone either way
        log.debug("event=backbone_close_failed backend=redis", exc_info=True)
