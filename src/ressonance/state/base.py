"""The seams of the shared state a node keeps with the others, picked together by `--state`.

Every seam is a `typing.Protocol` with a memory implementation (one node) and a Redis one
(a cluster); its docstring states what it guarantees.

- `PresenceStore`: channel occupancy, presence rosters and signed-in users. It is the one
  place the HTTP API reads counts from, so every node answers the same once a shared
  implementation is plugged in. `join_presence` reports a new member exactly once per user
  per channel (the user's first connection), and `remove_member` returns the user id exactly
  once (their last connection leaving): member_added and member_removed fire once per user,
  never per tab (reference §2.2). `add_user_connection` / `remove_user_connection` do the
  same for signed-in users, which drives watchlist online/offline events.
- `CacheStore`: the last event of a cache channel, kept for a TTL (reference §2.2); `get`
  never returns an expired value.
- `RateLimiter`: fixed one-second windows per key. It knows nothing of HTTP or WebSockets;
  callers turn a `Decision` into a pusher:error or into 429 headers.
- `UsageStore`: per-app, per-day counters. Messages are counted the way Pusher counts them:
  one per published event per channel plus one per copy delivered to a subscriber. Days are
  UTC dates, "YYYY-MM-DD".
- `ConnectionCounter`: how many connections each app has open, cluster-wide, as the sum
  over the nodes that are alive. `acquire` checks the limit and counts the new connection in
  one atomic step, so nodes admitting at the same time never take an app past its limit
  together.
- `Membership`: the node's one registration among the nodes sharing the state (a lease
  renewed by `heartbeat`). A node whose lease ends stops counting connections at once, and
  one survivor removes what it left in presence (`reap_dead_nodes`); after a lapse
  (`heartbeat` returned False) the node writes its presence and counts again.
- `WebhookQueue`: the durable lanes of webhook events, one per endpoint of an app
  (its docstring states the guarantees). The presence store records the events of its
  transitions there (occupied, vacated, member_added, member_removed, subscription_count)
  in the same atomic step as the transition, given the `ChannelHooks` of the channel (which
  lanes take which event); `NO_HOOKS` records nothing.

- `HistoryStore`: a bounded log of the events of each channel that keeps history, each with
  a serial that increases across the whole cluster (docs/topics/delivery.md).
- `IdempotencyStore`: the HTTP API's `Idempotency-Key`s, each claimed once cluster-wide and
  remembered with the answer of the request that claimed it.

`SharedState` bundles one node's stores, as `state.open_state(url)` makes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ressonance.protocol.errors import RessonanceError
from ressonance.protocol.webhooks import NO_HOOKS, ChannelHooks

# The hooks of a channel of an app, for stores that meet channels the node did not name
# (a dead node's, when it is reaped).
HooksFor = Callable[[str, str], Awaitable[ChannelHooks]]


async def no_hooks(app_id: str, channel: str) -> ChannelHooks:
    """No webhook takes anything (the default)."""
    return NO_HOOKS


@dataclass(frozen=True, slots=True)
class Departure:
    """What a dead node's connections left behind, for the survivors to announce.

    `user_id` is set when a presence member left its channel (member_removed) or, with an
    empty `channel`, when a signed-in user's last connection is gone (watchlist offline).
    `count` is the channel's remaining subscription count.
    """

    app_id: str
    channel: str
    user_id: str | None
    count: int


class PresenceFullError(RessonanceError):
    """A new user would push a presence channel past its member limit; nothing was recorded."""


@dataclass(frozen=True, slots=True)
class Joined:
    """What a presence subscribe recorded: whether the user is new to the channel (their
    first connection in it), the channel's subscription count, and its roster after the
    join (user_id -> user_info, no order promised)."""

    new_member: bool
    count: int
    roster: dict[str, object]


class PresenceStore(Protocol):
    """Each method that changes presence takes the channel's `hooks` and records, in the
    same atomic step, the webhook events of the change for the lanes that take them:
    - the first subscriber of a channel: `channel_occupied`, unless a `channel_vacated`
      of the channel is still delayed for that lane (a reload): then that one is cancelled
      and neither is sent;
    - the last subscriber gone: `channel_vacated`, delayed by the store's leave delay;
    - a user's first connection in a presence channel: `member_added`, unless the user's
      `member_removed` is still delayed (cancelled likewise); their last connection gone:
      `member_removed`, delayed;
    - any change of a non-presence channel's count: `subscription_count`, at once up to
      100 subscribers, above that at most once per 5 s per channel (the latest count).
    """

    async def join(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> int:
        """Count `socket_id` as subscribed; returns the channel's subscription count."""
        ...

    async def leave(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> int:
        """Forget `socket_id`'s subscription; returns the remaining subscription count."""
        ...

    async def subscription_count(self, app_id: str, channel: str) -> int: ...

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, int]:
        """Occupied channels starting with `prefix`, with their subscription counts."""
        ...

    async def join_presence(
        self,
        app_id: str,
        channel: str,
        socket_id: str,
        user_id: str,
        user_info: object,
        max_users: int | None = None,
        hooks: ChannelHooks = NO_HOOKS,
    ) -> Joined:
        """A presence subscribe in one atomic step (one round trip to a shared store): add
        the member connection, `join` the channel, and read the roster.

        With `max_users`, a NEW user is refused (PresenceFullError, nothing recorded) when the
        channel already has that many users; the check and the add are one atomic step, so
        the limit holds across nodes. Another connection of a user already in is always let in.
        """
        ...

    async def remove_member(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> str | None:
        """Remove a member connection; the user id when it was the user's last one."""
        ...

    async def members(self, app_id: str, channel: str) -> dict[str, object]:
        """user_id -> user_info of a presence channel (no order is promised).

        A user's info is the one their first connection joined with.
        """
        ...

    async def user_count(self, app_id: str, channel: str) -> int: ...

    async def add_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        """Index a signed-in connection; True when it is the user's first."""
        ...

    async def remove_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        """Drop a signed-in connection; True when it was the user's last."""
        ...

    async def online(self, app_id: str, user_ids: tuple[str, ...]) -> set[str]:
        """Which of `user_ids` are signed in on at least one connection."""
        ...


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """A cached channel event and the seconds it has left to live."""

    event: str
    data: str
    ttl: int


class CacheStore(Protocol):
    async def put(self, app_id: str, channel: str, event: str, data: str, ttl: int) -> None: ...

    async def get(self, app_id: str, channel: str) -> CachedEvent | None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float


class RateLimiter(Protocol):
    async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
        """Spend `cost` of `key`'s `limit` per second; refused spends nothing."""
        ...

    async def forget(self, key: str) -> None:
        """Drop `key`'s state (its owner went away)."""
        ...


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: str
    messages: int = 0
    peak_connections: int = 0


class UsageStore(Protocol):
    async def add_messages(self, app_id: str, day: str, count: int) -> int:
        """Add `count` messages to the app's day; the day's new total."""
        ...

    async def messages(self, app_id: str, day: str) -> int:
        """The app's messages on `day` so far."""
        ...

    async def record_connections(self, app_id: str, day: str, connections: int) -> None:
        """Note a cluster-wide concurrent connection count (the day keeps its peak)."""
        ...

    async def usage(self, app_id: str, days: Sequence[str]) -> list[DayUsage]:
        """The app's usage on each of `days`, in that order (zeros for days without any)."""
        ...


class ConnectionCounter(Protocol):
    async def acquire(self, app_id: str, limit: int) -> int | None:
        """Count one more connection of `app_id` on this node, unless the app already has
        `limit` (-1: no limit) across the cluster; the new cluster-wide total, or None when
        refused (nothing counted)."""
        ...

    async def release(self, app_id: str) -> None:
        """One connection of `app_id` on this node closed (never counts below zero)."""
        ...

    async def count(self, app_id: str) -> int:
        """The app's open connections across the nodes that are alive."""
        ...

    async def restore(self, counts: Mapping[str, int]) -> None:
        """Set this node's counts to `counts` (app id -> open connections); apps not in
        `counts` have none here. After a lapse of the node's lease, this writes its true
        counts again."""
        ...


class Membership(Protocol):
    """This node's lease among the nodes sharing the state, and the removal of dead ones.

    A node renews its lease every liveness interval; it ends `node_ttl` after the last
    renewal. From then on the node's connections no longer count (`ConnectionCounter`), and
    within one more interval a survivor reaps it: its presence entries are removed once, and
    returned as departures for the survivors to announce. A dead node's members are thus gone
    within `node_ttl + interval`.
    """

    async def heartbeat(self) -> bool:
        """Renew this node's lease; False when it had lapsed (the first heartbeat, an outage
        longer than the TTL, or a store that restarted empty): the node then writes its
        connections' presence (`PresenceStore`) and counts (`ConnectionCounter.restore`)
        again."""
        ...

    async def reap_dead_nodes(self, hooks: HooksFor = no_hooks) -> list[Departure]:
        """Remove what nodes whose lease ended left in presence; each is reaped once. The
        webhook events of those removals are recorded for the lanes `hooks` names."""
        ...


class Retention(NamedTuple):
    """How much of a channel's history is kept: at most `size` events, none older than
    `ttl` seconds (an app's `history_size` and `history_ttl`)."""

    size: int
    ttl: int


class HistoryEvent(NamedTuple):
    """One kept event: its serial, name, data (verbatim, as published) and publish time.

    A tuple of plain values, so the garbage collector stops tracking the many a log keeps."""

    serial: int
    name: str
    data: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """What a read found: `events` in serial order, and the log's bounds when it was read:
    `first`, the oldest serial kept (None when nothing is kept), and `last`, the newest
    serial the log gave (None when the channel has no log: never used, or expired)."""

    events: list[HistoryEvent]
    first: int | None
    last: int | None


class HistoryStore(Protocol):
    """The history of the channels that keep it, one log per (app, channel).

    Guarantees:
    - `append` gives each event the next serial of its channel's log, one more than the last,
      atomically: concurrent publishers on any number of nodes never get the same serial, and
      serials follow the order in which the events were kept.
    - A log that starts afresh (the first event or `position` of a channel, or after its
      log expired) starts at the current time in microseconds, so serials keep increasing
      across the lives of a log, and a serial of an earlier life is always older than the
      first of a new one.
    - A read returns only what `retention` keeps: the newest `size` events, none older than
      `ttl` seconds; what falls out is also freed, on the next append or read. A log (and
      its serial) with nothing kept goes after `ttl` more seconds without an append or
      `position`; its serial is remembered a day longer.
    - Within a log's life the serials kept are consecutive, so whether a range was lost is
      known from the bounds of a read (`HistoryPage`).
    """

    async def append(
        self, app_id: str, channel: str, name: str, data: str, retention: Retention
    ) -> int:
        """Keep one event; its serial."""
        ...

    async def position(self, app_id: str, channel: str, retention: Retention) -> int:
        """The newest serial of the channel's log, starting the log if it has none."""
        ...

    async def read(
        self,
        app_id: str,
        channel: str,
        retention: Retention,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
        newest: bool = False,
    ) -> HistoryPage:
        """Up to `limit` kept events with `after < serial < before` (either bound may be
        None), the oldest of them, or the newest with `newest`; in serial order either way."""
        ...

    async def retained_bytes(self) -> dict[str, int]:
        """Bytes of event names and data kept, per app id (for the metrics)."""
        ...


@dataclass(frozen=True, slots=True)
class Claim:
    """What claiming an idempotency key found. `owned`: the key was new and is now the
    caller's, who must `complete` or `release` it. Otherwise the key was claimed before, by
    a request whose `fingerprint` is given, with its `answer` (None while that request is
    still being answered)."""

    owned: bool
    fingerprint: str = ""
    answer: str | None = None


class IdempotencyStore(Protocol):
    """`Idempotency-Key`s of the HTTP API, per app, shared by every node.

    Guarantees: `claim` is atomic across nodes, so of concurrent requests with one key
    exactly one owns it; a claim that is never completed (its node died) lapses after
    `pending_ttl` seconds; a completed key answers with its answer for `ttl` seconds.
    """

    async def claim(self, app_id: str, key: str, fingerprint: str, pending_ttl: int) -> Claim: ...

    async def complete(self, app_id: str, key: str, answer: str, ttl: int) -> None:
        """Record the answer of the request that owns `key`; kept for `ttl` seconds."""
        ...

    async def release(self, app_id: str, key: str) -> None:
        """Forget an owned `key` whose request failed, so that a retry can claim it."""
        ...


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A webhook event waiting in its lane.

    `position` orders the lane (opaque text: later events have later positions); `event` is
    the event object (protocol/webhooks.py), its `id` included; `produced_ms` is when it was
    recorded (ms since the epoch, by the store's clock). A delayed event (vacated,
    member_removed, a throttled count) has `due_ms` and the `key` that cancels it.
    """

    position: str
    channel: str
    event: bytes
    produced_ms: int
    due_ms: int = 0
    key: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event given up on after the retry window; `id` names it for `replay`."""

    id: str
    lane: str
    channel: str
    event: bytes
    produced_ms: int
    failed_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One webhook request: when, its HTTP status (0: no answer), how long, what went wrong."""

    at_ms: int
    status: int
    latency_ms: int
    events: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class LaneDepth:
    """How many events wait in a lane, and when the oldest was recorded (0: none)."""

    events: int
    oldest_ms: int


class WebhookQueue(Protocol):
    """Durable lanes of webhook events: one lane per endpoint of an app (`lane_id`).

    Guarantees:
    - Durable: an event leaves its lane only by `done` (delivered) or `dead_letter`. Events
      of presence transitions are recorded by the presence store in the transition's own
      atomic step (or, on a single node, in the same buffer); `add` buffers the others
      (client events, cache misses) until `flush`, which the node runs every few ms. What a
      crash can lose is that buffer.
    - Ordered: `read` gives a lane's events in the order they were recorded.
    - One worker per lane: `claim` takes (or renews) the lane's lease for `lease_ttl`
      seconds; while it lasts no other node's claim succeeds. A dead node's lanes are
      claimed by another node when their leases end, and read again from their first
      event: delivery is at least once.
    - Delayed events: `fire` says whether a delayed event is still wanted (it was not
      cancelled) and makes it uncancellable from then on; a cancelled event leaves its lane,
      a fired one stays wanted (`fire` is True again when another worker reads it again).
    - Bounded: the dead letters of an app and the delivery log of a lane keep their most
      recent entries only (the limits are the implementation's, documented there).
    """

    wake: Callable[[], None]
    """Called when `add` (or the presence store) buffers the first event since a `flush`."""

    async def open(self) -> None:
        """Ready the queue (create tables, load what is delayed); before any other call."""
        ...

    def add(
        self,
        lanes: Sequence[str],
        channel: str,
        event: bytes,
        *,
        dedupe: str = "",
        dedupe_seconds: float = 0.0,
    ) -> None:
        """Buffer `event` for each of `lanes` (never waits). With `dedupe`, an event with the
        same key buffered less than `dedupe_seconds` ago (cluster-wide) drops this one."""
        ...

    async def flush(self) -> None:
        """Store what is buffered (one group commit)."""
        ...

    async def lanes(self) -> list[str]:
        """The lanes that may hold events."""
        ...

    async def claim(self, lane: str) -> bool:
        """Take or renew this node's lease on `lane`; False when another node holds it."""
        ...

    async def release(self, lane: str, *, if_empty: bool = False) -> bool:
        """Give up this node's lease (with `if_empty`, only when the lane holds no event,
        and the lane is then forgotten); whether it was given up."""
        ...

    async def read(self, lane: str, after: str = "", limit: int = 100) -> list[QueuedEvent]:
        """Up to `limit` events of `lane` after position `after` ("" for the first)."""
        ...

    async def fire(self, lane: str, event: QueuedEvent) -> bool:
        """Whether a delayed event is still wanted; from now on it cannot be cancelled."""
        ...

    async def done(self, lane: str, positions: Sequence[str]) -> None:
        """Delivered: these events leave the lane."""
        ...

    async def dead_letter(
        self, lane: str, events: Sequence[QueuedEvent], reason: str, failed_ms: int
    ) -> None:
        """Given up on: these events move from the lane to the app's dead letters."""
        ...

    async def record_attempt(self, lane: str, attempt: DeliveryAttempt) -> None:
        """Add a request to the lane's delivery log."""
        ...

    async def depth(self, lanes: Sequence[str]) -> dict[str, LaneDepth]:
        """How many events wait in each of `lanes`."""
        ...

    async def dead_letters(
        self, app_id: str, after: str = "", limit: int = 100
    ) -> list[DeadLetter]:
        """The app's dead letters after id `after`, oldest first."""
        ...

    async def replay(self, app_id: str, ids: Sequence[str]) -> int:
        """Put these dead letters back at the end of their lanes (with their ids); how many."""
        ...

    async def delivery_log(self, lane: str, limit: int = 100) -> list[DeliveryAttempt]:
        """The lane's most recent requests, newest first."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SharedState:
    """One node's stores of `--state`, made together by `open_state`.

    `limiter` serves the app-wide limits (shared by every node); per-connection limits stay
    in the node's memory. `webhooks` is opened by the node when it starts. `close` releases
    what the stores hold (the Redis client, the webhook database), once, when the node stops.
    """

    presence: PresenceStore
    cache: CacheStore
    limiter: RateLimiter
    usage: UsageStore
    connections: ConnectionCounter
    membership: Membership
    history: HistoryStore
    idempotency: IdempotencyStore
    webhooks: WebhookQueue
    close: Callable[[], Awaitable[None]]
