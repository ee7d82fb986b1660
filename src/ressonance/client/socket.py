"""An asyncio Pusher WebSocket client: subscribe, receive, client events, sign-in, reconnect,
and resume: what it missed while it was away, on channels that keep history.

Rules it follows, as pusher-js does (reference §7): it answers pusher:ping, pings after the
server's activity_timeout of silence, and after an unexpected close acts on the close code
as pusher-js's `Protocol.getCloseAction` does (`close_action`): 4000-4099 and 4300 and above
refuse (it stays closed), 4200-4299 retry at once, anything else reconnects after a delay.
Delays grow exponentially with full jitter (a uniform draw between 0 and `1 s * 2**n`, at
most `max_backoff`), so that many clients cut at once do not return at once. On reconnect it
signs in again and resubscribes every channel.

Resume (docs/topics/delivery.md): on a channel that keeps history every event carries a
serial, and `subscription_succeeded` the channel's newest; the socket remembers the highest
serial per channel (`positions`) and, when it resubscribes, asks to resume after it. The
events it missed then arrive, in order and once, before the live stream; when they cannot,
`ressonance:resume_failed` arrives on the channel instead. On other channels (and with
`resume=False`) delivery across a reconnect is at-most-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

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
    serial: int | None = None  # on channels that keep history


class SubscriptionRefusedError(RessonanceError):
    """The server answered a subscribe with pusher:subscription_error."""


CloseAction = Literal["refused", "retry", "backoff"]
BACKOFF_BASE_SECONDS: Final = 1.0  # pusher-js waits 1 s after a close it backs off from


def close_action(code: int | None) -> CloseAction:
    """What to do after the server closed with `code`, as pusher-js decides (reference §7):
    "refused" (stay closed), "retry" (reconnect at once) or "backoff" (after a delay)."""
    if code is None or code < 4000:
        return "backoff"  # network trouble, or a close pusher-js retries after 1 s
    if code < 4100 or code >= 4300:
        return "refused"
    return "backoff" if code < 4200 else "retry"


def backoff_delay(attempt: int, cap: float) -> float:
    """Full jitter: uniform between 0 and min(cap, base * 2**attempt)."""
    return random.uniform(0, min(cap, BACKOFF_BASE_SECONDS * 2**attempt))


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
        resume: bool = True,
    ) -> None:
        bases = [ws_url] if isinstance(ws_url, str) else list(ws_url)
        query = "?protocol=7&client=ressonance-py&version=1"
        self.urls = [f"{base.rstrip('/')}/app/{key}{query}" for base in bases]
        self.url = self.urls[0]
        self.authorizer = authorizer
        self.user_authenticator = user_authenticator
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.resume = resume
        self.socket_id = ""
        self.channels: set[str] = set()
        # channel -> the highest history serial seen: where a resume starts.
        self.positions: dict[str, int] = {}
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

    async def subscribe(self, channel: str, *, resume_after: int | None = None) -> ChannelMessage:
        """Subscribe and wait for subscription_succeeded (its data is the presence roster,
        its `serial` the channel's newest when the channel keeps history).

        `resume_after`, a serial kept from an earlier connection (a restarted process), asks
        for the events after it, as a reconnect does by itself. Wrap it in
        `asyncio.timeout()` to bound the wait.
        """
        self.channels.add(channel)
        if resume_after is not None:
            self.positions[channel] = resume_after
        waiter: asyncio.Future[ChannelMessage] = asyncio.get_running_loop().create_future()
        self._waiters[channel] = waiter
        await self._send_subscribe(channel)
        try:
            return await waiter
        finally:
            self._waiters.pop(channel, None)

    async def _send_subscribe(self, channel: str) -> None:
        data: dict[str, object] = {"channel": channel, "auth": ""}
        if channel.startswith(("private-", "presence-")):
            if self.authorizer is None:
                raise SubscriptionRefusedError(f"{channel} needs an authorizer")
            data.update(await self.authorizer(self.socket_id, channel))
        position = self.positions.get(channel)
        if self.resume and position is not None:
            data["resume_after"] = position
        await self._send({"event": m.SUBSCRIBE, "data": data})

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        self.positions.pop(channel, None)
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
        while True:
            await self._read()
            action = close_action(self.close_code)
            if not self.reconnect or action == "refused":
                return
            attempt = 0 if action == "backoff" else -1  # "retry": the first one at once
            while self.reconnect:
                if attempt >= 0:
                    await asyncio.sleep(backoff_delay(attempt, self.max_backoff))
                attempt += 1
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
                with contextlib.suppress(
                    OSError, aiohttp.ClientError, ConnectionError, TimeoutError
                ):
                    await self._open()
                    await self._restore()
                    break

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
            if message.serial is not None and message.channel is not None:
                known = self.positions.get(message.channel)
                if known is None or message.serial > known:
                    self.positions[message.channel] = message.serial
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
    serial = envelope.get("serial")
    return ChannelMessage(
        envelope["event"],
        envelope.get("channel"),
        data,
        envelope.get("user_id"),
        serial if isinstance(serial, int) else None,
    )
