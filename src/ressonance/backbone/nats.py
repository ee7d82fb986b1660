"""The NATS backbone: each topic is a core NATS subject, `<prefix>.<base64url(topic name)>`.

Subjects: NATS splits subjects into tokens at `.`, reserves `*` and `>` as wildcards and
forbids whitespace, while topic names (`<app id>:<channel>`) may hold `.`, `:`, `#`, `@`, `,`,
`;`, `=` and more. So the name's UTF-8 bytes are base64url-encoded without padding
(RFC 4648 §5: `A-Z a-z 0-9 - _`), one safe token, reversible, 4/3 of the topic's length.
`prefix` may itself have several tokens (`ressonance.prod`).

Rules it keeps (on top of backbone/base.py):
- Interest-based: one subscription per live topic; `subscribe` returns after a PING/PONG
  round trip, so the server has the subscription before any later publish.
- Order per topic per publisher: NATS keeps the order of one connection's messages, and
  nats-py runs each subscription's callback on one task, in order.
- At-most-once: core NATS, no JetStream. A subscription that falls too far behind loses
  messages (nats-py "slow consumer"); that is logged and counted, not hidden.
- One connection, owned by this class. nats-py's own reconnect is off: it waits a fixed
  time between attempts and, while reconnecting, buffers publishes and reports success.
  When the connection is lost (error, or two PINGs unanswered) the backbone is unhealthy,
  publishes raise BackboneUnavailableError, and it reconnects with backoff and jitter,
  subscribing every live topic again before it reports healthy.
- Messages are written in wire format `wire_version` (backbone/wire.py; the current one
  unless a node must be understood by nodes not yet upgraded); both versions are read.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from importlib.util import find_spec
from typing import TYPE_CHECKING

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
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)


def subject_of(prefix: str, topic: Topic) -> str:
    """The NATS subject that carries `topic`."""
    token = base64.urlsafe_b64encode(topic.name.encode()).rstrip(b"=").decode("ascii")
    return f"{prefix}.{token}"


def _check_prefix(prefix: str) -> None:
    tokens = prefix.split(".")
    if any(not t or t in ("*", ">") or any(c.isspace() for c in t) for t in tokens):
        raise ConfigError(f"nats prefix {prefix!r}: dot-separated tokens without spaces or * >")


class NatsBackbone:
    """Topic pub/sub over core NATS."""

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
        if find_spec("nats") is None:
            raise ConfigError(
                f"backbone {redacted_url(url)}: needs nats-py: pip install 'ressonance[nats]'"
            )
        _check_prefix(prefix)
        self._url = url
        self._servers = [server.strip() for server in url.split(",")]
        self._prefix = prefix
        self._backoff = backoff or Backoff()
        self._ping_interval = max(1, math.ceil(ping_interval))
        self._timeout = max(1, math.ceil(timeout))
        self._wire_version = wire_version
        self._state = LinkState(log, "nats", url)
        self._topics: set[Topic] = set()
        self._on_message: MessageHandler | None = None
        self._client: Client | None = None  # the live connection; None while down
        self._subs: dict[Topic, Subscription] = {}
        self._lock = asyncio.Lock()  # topics, subscriptions and the live connection change together
        self._slow_drops = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        client = self._client
        return self._state.healthy and client is not None and client.is_connected

    async def start(self, on_message: MessageHandler) -> None:
        from nats.errors import Error as NatsError

        self._on_message = on_message
        try:
            closed = await self._open()
        except (NatsError, OSError) as exc:
            raise BackboneUnavailableError(
                f"cannot reach {redacted_url(self._url)}: {exc}"
            ) from exc
        self._task = asyncio.create_task(self._run(closed), name="nats-backbone")

    async def publish(self, message: BackboneMessage) -> None:
        from nats.errors import Error as NatsError

        client = self._client
        if client is None or not self.healthy:
            raise BackboneUnavailableError(f"backbone {redacted_url(self._url)} is disconnected")
        try:
            payload = encode_message(message, self._wire_version)
            await client.publish(subject_of(self._prefix, message.topic), payload)
        except (NatsError, OSError) as exc:
            raise BackboneUnavailableError(
                f"publish to {redacted_url(self._url)} failed: {exc}"
            ) from exc

    async def subscribe(self, topic: Topic) -> None:
        from nats.errors import Error as NatsError

        async with self._lock:
            if topic in self._topics:
                return
            self._topics.add(topic)
            client = self._client
            if client is None:
                return  # subscribed by the next connection
            try:
                self._subs[topic] = await self._subscribe_on(client, topic)
            except (NatsError, OSError) as exc:  # the connection is going; the next resubscribes
                log.debug("event=backbone_command_failed backend=nats error=%r", exc)
                return
        await self._confirm(client)

    async def unsubscribe(self, topic: Topic) -> None:
        from nats.errors import Error as NatsError

        async with self._lock:
            self._topics.discard(topic)
            sub = self._subs.pop(topic, None)
            if sub is None:
                return
            try:
                await sub.unsubscribe()
            except (NatsError, OSError) as exc:  # gone with its connection
                log.debug("event=backbone_command_failed backend=nats error=%r", exc)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        async with self._lock:
            client, self._client = self._client, None
            self._subs.clear()
            self._topics.clear()
        if client is not None:
            await _discard(client)
        if task is not None:
            self._state.closed()
        self._on_message = None

    # --- the connection -----------------------------------------------------------------

    async def _open(self) -> asyncio.Event:
        """Connect and subscribe every live topic; the event set when this connection closes."""
        client, closed = await self._connect()
        try:
            async with self._lock:
                for topic in list(self._topics):
                    self._subs[topic] = await self._subscribe_on(client, topic)
                self._client = client
            await self._flush(client)
        except BaseException:
            async with self._lock:
                self._client = None
                self._subs.clear()
            await _discard(client)
            raise
        self._state.up(len(self._topics))
        return closed

    async def _connect(self) -> tuple[Client, asyncio.Event]:
        from nats.aio.client import Client

        client = Client()
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        async def on_error(error: Exception) -> None:
            self._log_error(error)

        connecting = client.connect(
            servers=self._servers,
            name="ressonance",
            allow_reconnect=False,
            # With reconnect off, nats-py still tries each server until it has failed more
            # than `max_reconnect_attempts` times, `reconnect_time_wait` apart (60 x 2 s by
            # default): this makes it two immediate tries; the backoff is ours.
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            connect_timeout=self._timeout,
            ping_interval=self._ping_interval,
            max_outstanding_pings=2,
            closed_cb=on_closed,
            error_cb=on_error,
        )
        try:
            await connecting
        except BaseException:
            await _discard(client)
            raise
        return client, closed

    async def _run(self, closed: asyncio.Event) -> None:
        """Keep a connection up for as long as the backbone is open."""
        while True:
            await closed.wait()
            async with self._lock:
                client, self._client = self._client, None
                self._subs.clear()
            error = client.last_error if client is not None else None
            self._state.down(error or "connection closed")
            if client is not None:
                await _discard(client)
            closed = await self._reconnect()

    async def _reconnect(self) -> asyncio.Event:
        from nats.errors import Error as NatsError

        attempt = 0
        wait = self._backoff.delay(attempt)
        while True:
            await asyncio.sleep(wait)
            try:
                return await self._open()
            except (NatsError, OSError) as exc:
                attempt += 1
                wait = self._backoff.delay(attempt)
                self._state.retry_failed(attempt, wait, exc)

    async def _subscribe_on(self, client: Client, topic: Topic) -> Subscription:
        return await client.subscribe(subject_of(self._prefix, topic), cb=self._receive)

    async def _confirm(self, client: Client) -> None:
        """Wait until the server has what was sent; if the connection goes, the next one
        resubscribes."""
        from nats.errors import Error as NatsError

        try:
            await self._flush(client)
        except (NatsError, OSError) as exc:
            log.debug("event=backbone_flush_failed backend=nats error=%r", exc)

    async def _flush(self, client: Client) -> None:
        """PING until a PONG proves the server has processed every command sent so far.

        nats-py writes a flush's PING to the socket at once, ahead of commands still queued
        for its flusher task (a SUB just sent, say), so one PONG proves only what had left
        the queue before the PING. By the second round trip the flusher has run.
        """
        for _ in range(3):
            settled = client.pending_data_size == 0
            await client.flush(self._timeout)
            if settled:
                return

    async def _receive(self, msg: Msg) -> None:
        if self._on_message is not None:
            deliver(msg.data, self._topics, self._on_message, "nats")

    def _log_error(self, error: Exception) -> None:
        from nats.errors import SlowConsumerError, StaleConnectionError

        if isinstance(error, SlowConsumerError):
            self._slow_drops += 1
            if self._slow_drops & (self._slow_drops - 1) == 0:  # 1, 2, 4, 8, ...
                log.warning(
                    "event=backbone_slow_consumer backend=nats subject=%s dropped_total=%d",
                    error.subject,
                    self._slow_drops,
                )
        elif self._state.healthy and not isinstance(error, StaleConnectionError | OSError):
            log.warning("event=backbone_error backend=nats error=%r", repr(error))
        else:  # a lost connection or a failed attempt: the reconnect loop logs the outcome
            log.debug("event=backbone_error backend=nats error=%r", repr(error))


async def _discard(client: Client) -> None:
    try:
        await client.close()
    except Exception:  # closing a broken connection may fail again; it is gone either way
        log.debug("event=backbone_close_failed backend=nats", exc_info=True)
