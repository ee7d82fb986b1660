"""An asyncio Pusher WebSocket client: subscribe, receive, client events, sign-in, reconnect.

Rules it follows, as pusher-js does (reference §7): it answers pusher:ping, pings after the
server's activity_timeout of silence, reconnects after an unexpected close (backing off
with jitter; never after a 4000-4099 close), and on reconnect resubscribes every channel and
signs in again. Delivery across a reconnect is at-most-once: events published while it was
away are not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import orjson

from ressonance.protocol import messages as m
from ressonance.protocol.errors import RessonanceError

# (socket_id, channel) -> the auth endpoint's JSON body ({"auth", "channel_data"?}).
Authorizer = Callable[[str, str], Awaitable[dict[str, str]]]
# socket_id -> the user authentication endpoint's JSON body ({"auth", "user_data"}).
UserAuthenticator = Callable[[str], Awaitable[dict[str, str]]]


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message from the server; `data` is decoded when it was a JSON string."""

    event: str
    channel: str | None
    data: object
    user_id: str | None = None


class SubscriptionRefusedError(RessonanceError):
    """The server answered a subscribe with pusher:subscription_error."""


class PusherSocket:
    """One connection to `ws_url` (like `ws://127.0.0.1:6001`) for the app `key`.

    `ws_url` may be a list of servers: the socket connects to the first and, after each
    unexpected close, tries the next (round robin), as a client behind no load balancer would.
    """

    def __init__(
        self,
        ws_url: str | Sequence[str],
        key: str,
        *,
        authorizer: Authorizer | None = None,
        user_authenticator: UserAuthenticator | None = None,
        reconnect: bool = True,
        max_backoff: float = 30.0,
    ) -> None:
        bases = [ws_url] if isinstance(ws_url, str) else list(ws_url)
        query = "?protocol=7&client=ressonance-py&version=1"
        self.urls = [f"{base.rstrip('/')}/app/{key}{query}" for base in bases]
        self.url = self.urls[0]
        self.authorizer = authorizer
        self.user_authenticator = user_authenticator
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.socket_id = ""
        self.channels: set[str] = set()
        self.signed_in = False
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._inbox: asyncio.Queue[ChannelMessage] = asyncio.Queue(maxsize=10_000)
        self._waiters: dict[str, asyncio.Future[ChannelMessage]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._activity_timeout = 120.0
        self.close_code: int | None = None

    async def __aenter__(self) -> PusherSocket:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection and wait for pusher:connection_established."""
        self._session = self._session or aiohttp.ClientSession()
        await self._open()
        self._reader = asyncio.create_task(self._run())

    async def _open(self) -> None:
        assert self._session is not None
        self._ws = await self._session.ws_connect(self.url, autoping=True)
        first = await self._ws.receive_str(timeout=10)
        message = _decode(first)
        if message.event != m.CONNECTION_ESTABLISHED or not isinstance(message.data, dict):
            raise ConnectionError(f"unexpected first message: {first[:200]}")
        self.socket_id = str(message.data["socket_id"])
        self._activity_timeout = float(str(message.data["activity_timeout"]))

    async def close(self) -> None:
        self.reconnect = False
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def subscribe(self, channel: str) -> ChannelMessage:
        """Subscribe and wait for subscription_succeeded (its data is the presence roster).

        Wrap it in `asyncio.timeout()` to bound the wait.
        """
        self.channels.add(channel)
        waiter: asyncio.Future[ChannelMessage] = asyncio.get_running_loop().create_future()
        self._waiters[channel] = waiter
        await self._send_subscribe(channel)
        try:
            return await waiter
        finally:
            self._waiters.pop(channel, None)

    async def _send_subscribe(self, channel: str) -> None:
        data: dict[str, str] = {"channel": channel, "auth": ""}
        if channel.startswith(("private-", "presence-")):
            if self.authorizer is None:
                raise SubscriptionRefusedError(f"{channel} needs an authorizer")
            data.update(await self.authorizer(self.socket_id, channel))
        await self._send({"event": m.SUBSCRIBE, "data": data})

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await self._send({"event": m.UNSUBSCRIBE, "data": {"channel": channel}})

    async def signin(self) -> None:
        """Sign in with the user authenticator; events to the user arrive afterwards."""
        if self.user_authenticator is None:
            raise RuntimeError("signin needs a user_authenticator")
        self.signed_in = True
        await self._send({"event": m.SIGNIN, "data": await self.user_authenticator(self.socket_id)})

    async def trigger(self, channel: str, event: str, data: object) -> None:
        """Send a client event (the name must start with client-)."""
        await self._send({"event": event, "channel": channel, "data": data})

    async def next_message(self) -> ChannelMessage:
        """The next message that is not a subscription reply or a ping."""
        return await self._inbox.get()

    async def _send(self, message: dict[str, object]) -> None:
        assert self._ws is not None
        await self._ws.send_str(orjson.dumps(message).decode())

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            await self._read()
            if not self.reconnect or (
                self.close_code is not None and 4000 <= self.close_code < 4100
            ):
                return
            await asyncio.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, self.max_backoff)
            self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
            with contextlib.suppress(OSError, aiohttp.ClientError, ConnectionError, TimeoutError):
                await self._open()
                backoff = 0.5
                await self._restore()

    async def _restore(self) -> None:
        if self.signed_in:
            await self.signin()
        for channel in list(self.channels):
            await self._send_subscribe(channel)

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            try:
                raw = await ws.receive(timeout=self._activity_timeout)
            except TimeoutError:
                await self._send({"event": m.PING, "data": {}})
                continue
            if raw.type is not aiohttp.WSMsgType.TEXT:
                self.close_code = ws.close_code
                return
            message = _decode(raw.data)
            if message.event == m.PING:
                await self._send({"event": m.PONG, "data": {}})
            else:
                self._dispatch(message)

    def _dispatch(self, message: ChannelMessage) -> None:
        waiter = self._waiters.get(message.channel or "")
        if waiter is not None and not waiter.done():
            if message.event == m.SUBSCRIPTION_SUCCEEDED:
                waiter.set_result(message)
                return
            if message.event == m.SUBSCRIPTION_ERROR:
                waiter.set_exception(SubscriptionRefusedError(str(message.data)))
                return
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(message)


def _decode(text: str) -> ChannelMessage:
    envelope = orjson.loads(text)
    data = envelope.get("data")
    if isinstance(data, str):
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(data)
    return ChannelMessage(envelope["event"], envelope.get("channel"), data, envelope.get("user_id"))
