"""The Pusher state of one WebSocket connection, without any I/O (reference §2).

The server feeds it text frames with `receive(text, now)` and reads back what to send with
`data_to_send()`. What needs shared state (the presence roster, counts, delivery) comes out
as events for the node, which answers through `subscription_succeeded` or
`subscription_refused`.

Rules:
1. Time is a parameter; nothing here reads a clock.
2. Errors a client can cause never raise out of `receive`: they become pusher:error or
   pusher:subscription_error messages, and the connection stays open (closing with a 40xx
   code would stop pusher-js from reconnecting, §7).
3. A channel is "subscribed" only after the node said so; client events need that (§2.4).
   A name is classified once, when it is requested: `channels` keeps the `Channel` (and
   the presence member) for what comes later (client events, unsubscribe, the node's
   close and resync), so nothing classifies a subscribed name again.
4. Abuse limits (issue "Apps, plans and protection" §4), per connection, by token buckets fed
   the `now` of each frame: every frame takes an inbound token before it is even parsed
   (`max_inbound_messages_per_sec`, bursts of that many plus `max_channels_per_connection`,
   so a page subscribing to all its channels at load is never throttled): a text message
   in `receive`, every other frame (ping, pong, close, fragment, binary) in
   `frames_received`, which the WebSocket calls once per read with their count; at most
   `max_channels_per_connection` channels are joined or pending; a pusher:subscribe that
   passes the cheap checks (name, duplicate, channel count) takes a subscription token
   before its signature is checked (`max_subscriptions_per_sec`, bursts of
   `max_channels_per_connection`). Subscriptions over a limit get a channel-scoped
   pusher:subscription_error `LimitReached` with status 4301: a 4300-range code is "other
   errors" in Pusher's table, and never a close here, so the connection stays; 4100 would
   say "the server is over capacity", which it is not. A frame over the inbound rate is
   dropped unread (a dropped ping is not answered); the first one dropped gets pusher:error
   4301 naming the limit; once as many more are dropped without a one-second pause the
   client is closed with 4100 (over capacity: pusher-js reconnects after 1 s), never with a
   43xx code, which would stop pusher-js for good (§7) over what is only a rate.
5. Every request refused (answered with pusher:error or pusher:subscription_error, here or
   by the node through `subscription_refused`) is also kept as a `Refused` for the shell to
   log (`refusals`); the client's answer does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import orjson

from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import (
    USER_CHANNEL_PREFIX,
    Channel,
    ChannelKind,
    channel_name_problem,
    classify,
)
from ressonance.protocol.errors import ErrorCode, ProtocolError, SubscriptionError
from ressonance.protocol.rates import TokenBucket
from ressonance.protocol.signing import token_matches

PONG_TIMEOUT_SECONDS: Final = 30
USER_ID_MAX_LENGTH: Final = 128
USER_CHANNEL_MAX_LENGTH: Final = len(USER_CHANNEL_PREFIX) + USER_ID_MAX_LENGTH
# Rosters and member_added wrap user_info in up to 3 levels; the encoder stops at 255.
USER_INFO_MAX_DEPTH: Final = 100


@dataclass(frozen=True, slots=True)
class Member:
    """A presence channel member: one user, possibly on several connections."""

    user_id: str
    user_info: object


@dataclass(frozen=True, slots=True)
class User:
    """The identity a connection signed in with (reference §2.5)."""

    id: str
    info: object
    watchlist: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A channel the connection has joined, with its presence member (None elsewhere)."""

    channel: Channel
    member: Member | None


@dataclass(frozen=True, slots=True)
class SubscribeRequested:
    """A subscribe whose auth holds; `resume_after` is the last history serial a
    reconnecting client saw (`protocol.history`), None from unmodified clients."""

    channel: Channel
    member: Member | None
    resume_after: int | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    channel: Channel
    member: Member | None


@dataclass(frozen=True, slots=True)
class ClientEventReceived:
    channel: Channel
    event: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The connection must be closed with `code` (a client that keeps flooding)."""

    code: ErrorCode
    reason: str


Event = SubscribeRequested | Unsubscribed | ClientEventReceived | SignedIn | CloseRequested


@dataclass(frozen=True, slots=True)
class Refused:
    """A request of the client that was refused, as the client was told (rule 5)."""

    request: str  # "subscribe", "signin", "client_event" or "message" (unreadable, or a flood)
    channel: str | None
    code: int | None
    reason: str


_REQUESTS: Final[dict[type, str]] = {m.Subscribe: "subscribe", m.Signin: "signin"}


@dataclass(slots=True)
class Connection:
    """Protocol state of one connection. `socket_id` is `digits.digits` (reference §0.6)."""

    app: App
    socket_id: str
    last_seen: float
    channels: dict[str, Subscription] = field(default_factory=dict)  # by channel name
    pending: set[str] = field(default_factory=set)
    user: User | None = None
    ping_sent_at: float | None = None
    connected_at: float = 0.0
    _outbox: list[bytes] = field(default_factory=list)
    _refused: list[Refused] = field(default_factory=list)
    _inbound: TokenBucket = field(init=False)
    _subscribes: TokenBucket = field(init=False)
    _dropped: int = 0  # frames dropped over the inbound rate in this flood
    _last_drop: float = float("-inf")

    def __post_init__(self) -> None:
        app, now = self.app, self.last_seen
        self.connected_at = now
        channels = app.max_channels_per_connection
        inbound = app.max_inbound_messages_per_sec
        self._inbound = TokenBucket.full(inbound, inbound + channels, now)
        subscribes = app.max_subscriptions_per_sec
        self._subscribes = TokenBucket.full(subscribes, max(subscribes, channels), now)
        self._outbox.append(m.connection_established(self.socket_id, app.activity_timeout))

    def data_to_send(self) -> list[bytes]:
        """Messages queued since the last call, in order; each is one JSON text frame."""
        out, self._outbox = self._outbox, []
        return out

    def send(self, message: bytes) -> None:
        self._outbox.append(message)

    def refusals(self) -> list[Refused]:
        """The requests refused since the last call, in order (rule 5); an empty list (not
        to be changed) when there is none, without allocating one per message."""
        out = self._refused
        if out:
            self._refused = []
        return out

    def receive(self, text: str, now: float) -> list[Event]:
        """Handle one text frame received at `now`."""
        self.last_seen = now
        self.ping_sent_at = None
        if not self._inbound.take(now):
            close = self._drop(now, 1)
            return [] if close is None else [close]
        if len(text) > self.app.max_payload_bytes + 4096:
            # Size checked before parsing: a soft limit answered with an error, the hard
            # one (the WebSocket's max message size) closes with 1009.
            limit = self.app.max_event_payload_in_kb
            self.send(
                m.error(
                    f"Message too large (max_event_payload_in_kb = {limit}, plus 4 KB)",
                    ErrorCode.CLIENT_EVENT_REJECTED,
                )
            )
            return []
        request = "message"
        try:
            message = m.parse_client_message(text)
            request = _REQUESTS.get(type(message), "client_event")  # the only others that fail
            return self._dispatch(message)
        except ProtocolError as exc:
            self.send(m.error(exc.message, exc.code, exc.channel))
            self._refused.append(Refused(request, exc.channel, exc.code, exc.message))
        except SubscriptionError as exc:
            self.subscription_refused(exc)
        return []

    def frames_received(self, count: int, now: float) -> list[CloseRequested] | None:
        """`count` frames other than text messages arrived at `now`; each takes an inbound token.

        None when every one was within the rate. Otherwise those over it are dropped (a ping
        among them goes unanswered) as text messages are, by the same flood policy: the list
        holds the CloseRequested when the flood goes on, and is empty otherwise.
        """
        dropped = count - self._inbound.take_up_to(count, now)
        if not dropped:
            return None
        close = self._drop(now, dropped)
        return [] if close is None else [close]

    def _drop(self, now: float, count: int) -> CloseRequested | None:
        """`count` frames over `max_inbound_messages_per_sec`: warn once, close if it goes on."""
        if now - self._last_drop >= 1.0:  # a new flood
            self._dropped = 0
        self._last_drop = now
        before = self._dropped
        self._dropped = before + count
        limit = self.app.max_inbound_messages_per_sec
        if before == 0:
            reason = (
                f"Rate limit exceeded: more than {limit} messages per second "
                "(max_inbound_messages_per_sec); messages are being dropped"
            )
            self.send(m.error(reason, ErrorCode.LIMIT_REACHED))
            self._refused.append(Refused("message", None, ErrorCode.LIMIT_REACHED, reason))
        if before <= limit < self._dropped:  # the (limit + 1)th drop of this flood
            reason = f"Too many messages per second (max_inbound_messages_per_sec = {limit})"
            return CloseRequested(ErrorCode.OVER_CAPACITY, reason)
        return None

    def _dispatch(self, message: m.ClientMessage) -> list[Event]:
        match message:
            case m.Ping():
                self.send(m.PONG_MESSAGE)
            case m.Pong():
                pass
            case m.Subscribe():
                return [self._subscribe(message)]
            case m.Unsubscribe():
                return self._unsubscribe(message.channel)
            case m.Signin():
                return [self._signin(message)]
            case _:
                return [self._client_event(message)]
        return []

    # --- subscriptions ------------------------------------------------------------------

    def _subscribe(self, request: m.Subscribe) -> SubscribeRequested:
        name = request.channel
        problem = channel_name_problem(name, self.app.max_channel_name_length)
        if problem is not None:
            raise SubscriptionError(name, "InvalidChannel", problem, 400)
        if name in self.channels or name in self.pending:
            raise ProtocolError(f"Existing subscription to channel {name}", channel=name)
        limit = self.app.max_channels_per_connection
        if len(self.channels) + len(self.pending) >= limit:
            raise SubscriptionError(
                name,
                "LimitReached",
                f"Too many channels on this connection: at most {limit} "
                "(max_channels_per_connection)",
                ErrorCode.LIMIT_REACHED,
            )
        # After the cheap refusals, before the signature check and the node's work.
        if not self._subscribes.take(self.last_seen):
            raise SubscriptionError(
                name,
                "LimitReached",
                f"Subscribing too fast: more than {self.app.max_subscriptions_per_sec} "
                "subscriptions per second (max_subscriptions_per_sec)",
                ErrorCode.LIMIT_REACHED,
            )
        channel = classify(name)
        member = self._authorize(channel, request)
        self.pending.add(name)
        return SubscribeRequested(channel, member, request.resume_after)

    def _authorize(self, channel: Channel, request: m.Subscribe) -> Member | None:
        if channel.kind is ChannelKind.USER:
            if self.user is None or self.user.id != channel.user_id:
                raise SubscriptionError(
                    channel.name,
                    "AuthError",
                    "Sign in as this user to subscribe to its channel",
                    403,
                )
            return None
        if not channel.needs_auth:
            return None
        subject = f"{self.socket_id}:{channel.name}"
        if request.channel_data is not None:
            subject = f"{subject}:{request.channel_data}"
        if not token_matches(request.auth, self.app.key, self.app.secret, subject):
            raise SubscriptionError(
                channel.name,
                "AuthError",
                f"Invalid signature: expected HMAC SHA256 hex digest of {subject}",
                401,
            )
        if channel.is_presence:
            return self._member(channel, request.channel_data)
        return None

    def _member(self, channel: Channel, channel_data: str | None) -> Member:
        if channel_data is None:
            # Presence auth without channel_data: the signed-in user is the member (§4).
            if self.user is None:
                raise SubscriptionError(
                    channel.name, "AuthError", "Presence channels need channel_data", 401
                )
            return Member(self.user.id, self.user.info)
        if len(channel_data.encode()) > self.app.max_member_bytes:
            raise SubscriptionError(
                channel.name,
                "LimitReached",
                f"Presence member data is larger than {self.app.max_presence_member_size_in_kb} KB",
                ErrorCode.CLIENT_EVENT_REJECTED,
            )
        try:
            data = orjson.loads(channel_data)
        except orjson.JSONDecodeError:
            data = None
        user_id = data.get("user_id") if isinstance(data, dict) else None
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not 0 < len(user_id) <= USER_ID_MAX_LENGTH:
            raise SubscriptionError(
                channel.name,
                "AuthError",
                "channel_data must be a JSON object with a user_id of 1 to 128 characters",
                400,
            )
        assert isinstance(data, dict)
        user_info = data.get("user_info")
        if m.nested_deeper_than(user_info, USER_INFO_MAX_DEPTH):
            raise SubscriptionError(
                channel.name,
                "LimitReached",
                f"Presence user_info is nested deeper than {USER_INFO_MAX_DEPTH} levels",
                ErrorCode.CLIENT_EVENT_REJECTED,
            )
        return Member(user_id, user_info)

    def subscription_succeeded(
        self, channel: Channel, member: Member | None, data: object, serial: int | None = None
    ) -> None:
        """The node accepted a subscription; `data` is the presence roster or None, `serial`
        the channel's newest history serial when it keeps history (`protocol.history`)."""
        self.pending.discard(channel.name)
        self.channels[channel.name] = Subscription(channel, member)
        roster = {} if data is None else data
        self.send(m.encode(m.SUBSCRIPTION_SUCCEEDED, roster, channel.name, serial))

    def subscription_refused(self, refusal: SubscriptionError) -> None:
        self.pending.discard(refusal.channel)
        self.send(
            m.subscription_error(refusal.channel, refusal.kind, refusal.message, refusal.status)
        )
        self._refused.append(Refused("subscribe", refusal.channel, refusal.status, refusal.message))

    def _unsubscribe(self, name: str) -> list[Event]:
        joined = self.channels.pop(name, None)
        if joined is None:
            return []
        return [Unsubscribed(joined.channel, joined.member)]

    # --- sign-in ------------------------------------------------------------------------

    def _signin(self, request: m.Signin) -> SignedIn:
        subject = f"{self.socket_id}::user::{request.user_data}"
        if not token_matches(request.auth, self.app.key, self.app.secret, subject):
            raise ProtocolError("Invalid signature for pusher:signin", ErrorCode.UNAUTHORIZED)
        user, watchlist_length = self._read_user(request.user_data)
        self.user = user
        self.send(m.encode(m.SIGNIN_SUCCESS, {"user_data": request.user_data}))
        limit = self.app.max_watchlist_size
        if watchlist_length > limit and self.app.watchlist:
            self.send(
                m.error(
                    f"Watchlist is longer than {limit}; the first {limit} are watched",
                    ErrorCode.WATCHLIST_LIMIT,
                )
            )
        return SignedIn(user)

    def _read_user(self, user_data: str) -> tuple[User, int]:
        """The user signed-in `user_data` names, and the length of the watchlist it gave."""
        try:
            data = orjson.loads(user_data)
        except orjson.JSONDecodeError:
            data = None
        user_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(user_id, str) or not 0 < len(user_id) <= USER_ID_MAX_LENGTH:
            raise ProtocolError(
                "user_data must be a JSON object with a string id", ErrorCode.UNAUTHORIZED
            )
        if channel_name_problem(USER_CHANNEL_PREFIX + user_id, USER_CHANNEL_MAX_LENGTH):
            # The id names the user's #server-to-user- channel, so it keeps channel rules (§3).
            raise ProtocolError(
                "user id may only contain letters, digits and -_=@,.;", ErrorCode.UNAUTHORIZED
            )
        if self.user is not None and self.user.id != user_id:
            raise ProtocolError(
                f"This connection is already signed in as user {self.user.id}",
                ErrorCode.UNAUTHORIZED,
            )
        assert isinstance(data, dict)
        watchlist = data.get("watchlist") or []
        if not isinstance(watchlist, list) or not all(isinstance(w, str) for w in watchlist):
            raise ProtocolError("watchlist must be a list of user ids", ErrorCode.UNAUTHORIZED)
        user_info = data.get("user_info")
        if m.nested_deeper_than(user_info, USER_INFO_MAX_DEPTH):
            raise ProtocolError(
                f"user_info is nested deeper than {USER_INFO_MAX_DEPTH} levels",
                ErrorCode.UNAUTHORIZED,
            )
        watched = tuple(watchlist[: self.app.max_watchlist_size])
        return User(user_id, user_info, watched), len(watchlist)

    # --- client events ------------------------------------------------------------------

    def _client_event(self, request: m.ClientEvent) -> ClientEventReceived:
        name, event = request.channel, request.event

        def reject(reason: str) -> ProtocolError:
            return ProtocolError(reason, ErrorCode.CLIENT_EVENT_REJECTED, name)

        if not self.app.enable_client_messages:
            raise reject("Client events are not enabled for this app (enable_client_messages)")
        joined = self.channels.get(name)
        channel = classify(name) if joined is None else joined.channel
        if not channel.accepts_client_events:
            raise reject("Client events are only allowed on private and presence channels")
        if joined is None:
            raise reject(f"No current subscription to channel {name}, or subscription in progress")
        if len(event) > self.app.max_event_name_length:
            raise reject(f"Event name is longer than {self.app.max_event_name_length} characters")
        member = joined.member
        try:
            payload = m.encode_channel_event(
                name, event, request.data, member.user_id if member is not None else None
            )
        except orjson.JSONEncodeError:  # nested deeper than the encoder goes (messages rule 4)
            raise reject("Client event data is nested too deeply") from None
        if len(payload) > self.app.max_payload_bytes + len(name) + len(event) + 200:
            raise reject(f"Client event data is larger than {self.app.max_event_payload_in_kb} KB")
        return ClientEventReceived(channel, event, payload)

    # --- liveness -----------------------------------------------------------------------

    def poll(self, now: float) -> ErrorCode | None:
        """Check timers at `now`; returns a close code when the connection must go.

        After `activity_timeout` seconds of silence the server sends pusher:ping; with no
        answer in 30 s more it closes with 4201 (reference §2.1). An app with
        `enable_user_authentication` closes (4009) connections that neither signed in nor
        joined a private or presence channel within `user_authentication_timeout`.
        """
        if self.ping_sent_at is not None:
            if now - self.ping_sent_at >= PONG_TIMEOUT_SECONDS:
                return ErrorCode.PONG_NOT_RECEIVED
        elif now - self.last_seen >= self.app.activity_timeout:
            self.ping_sent_at = now
            self.send(m.PING_MESSAGE)
        if (
            self.app.enable_user_authentication
            and now - self.connected_at >= self.app.user_authentication_timeout
            and not self.authorized
        ):
            self.send(m.error("Connection not authorized within timeout", ErrorCode.UNAUTHORIZED))
            return ErrorCode.UNAUTHORIZED
        return None

    @property
    def authorized(self) -> bool:
        """Signed in, or subscribed to a channel that needed a signature."""
        return self.user is not None or any(
            joined.channel.needs_auth for joined in self.channels.values()
        )
