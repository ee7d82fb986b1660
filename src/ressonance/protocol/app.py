"""An app: one tenant's credentials, features and limits.

Defaults follow Pusher's documented values where Pusher documents one (reference §3, §4, §5
and §8): 100 presence members of at most 1 KB, 10 KB payloads, 10 events a batch, 100 channels
a publish, 10 client events a second per connection. `-1` means "no limit" for
`max_connections`. `history_channels` names the channels whose events are kept, by patterns
where `*` matches any run of characters (`chat-*`), for `history_ttl` seconds and at most
`history_size` events per channel (docs/topics/delivery.md); `idempotency_ttl` is how long an
HTTP API `Idempotency-Key` is remembered. `slow_client_policy` says what happens to a
connection that cannot read as fast as the app sends (close code 4100, pusher-js reconnects
after 1 s, §7; or drop its oldest waiting messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ressonance.protocol.webhooks import WebhookEndpoint

UNLIMITED: Final = -1

SlowClientPolicy = Literal["close", "drop_oldest"]
SLOW_CLIENT_POLICIES: Final[tuple[SlowClientPolicy, ...]] = ("close", "drop_oldest")


@dataclass(frozen=True, slots=True)
class App:
    """A tenant of the server, as the app store holds it."""

    id: str
    key: str
    secret: str = field(repr=False)  # never in logs or tracebacks
    name: str = ""
    enabled: bool = True
    enable_client_messages: bool = False
    enable_user_authentication: bool = False
    user_authentication_timeout: int = 30
    subscription_count: bool = False
    watchlist: bool = False
    allowed_origins: tuple[str, ...] = field(default=("*",))
    activity_timeout: int = 120
    cache_ttl: int = 1800
    max_connections: int = UNLIMITED
    max_presence_members_per_channel: int = 100
    max_presence_member_size_in_kb: int = 1
    max_channel_name_length: int = 200
    max_event_channels_at_once: int = 100
    max_event_name_length: int = 200
    max_event_payload_in_kb: int = 10
    max_event_batch_size: int = 10
    max_client_events_per_sec: int = 10
    max_watchlist_size: int = 100
    slow_client_policy: SlowClientPolicy = "close"
    # The plan the app is on (its quotas come from it unless the app overrides them); "" is
    # no plan: the defaults here.
    plan: str = ""
    # Quotas (issue "Apps, plans and protection" §3), enforced cluster-wide; -1 is no limit.
    max_messages_per_day: int = UNLIMITED
    max_backend_events_per_sec: int = UNLIMITED
    max_app_client_events_per_sec: int = UNLIMITED
    max_read_requests_per_sec: int = UNLIMITED
    max_connections_per_sec: int = UNLIMITED
    # Abuse protection per connection (§4): defaults a normal app never reaches.
    max_channels_per_connection: int = 200
    max_subscriptions_per_sec: int = 100
    max_inbound_messages_per_sec: int = 200
    # Delivery you can count on (docs/topics/delivery.md): channel history and idempotent
    # publish. The defaults let a client at 100 events/s recover a 30 s cut (10,000 events).
    history_channels: tuple[str, ...] = ()
    history_size: int = 10_000
    history_ttl: int = 300
    idempotency_ttl: int = 86_400
    # Where the app's webhooks go (protocol/webhooks.py); header values may be credentials.
    webhooks: tuple[WebhookEndpoint, ...] = field(default=(), repr=False)

    @property
    def max_payload_bytes(self) -> int:
        return self.max_event_payload_in_kb * 1024

    @property
    def max_member_bytes(self) -> int:
        return self.max_presence_member_size_in_kb * 1024


# Settings an operator may set per app, with the type each one takes. Used by the config
# loader and its reference docs, so the two cannot drift.
BOOL_SETTINGS: Final = (
    "enabled",
    "enable_client_messages",
    "enable_user_authentication",
    "subscription_count",
    "watchlist",
)
INT_SETTINGS: Final = (
    "user_authentication_timeout",
    "activity_timeout",
    "cache_ttl",
    "max_connections",
    "max_presence_members_per_channel",
    "max_presence_member_size_in_kb",
    "max_channel_name_length",
    "max_event_channels_at_once",
    "max_event_name_length",
    "max_event_payload_in_kb",
    "max_event_batch_size",
    "max_client_events_per_sec",
    "max_watchlist_size",
    "max_messages_per_day",
    "max_backend_events_per_sec",
    "max_app_client_events_per_sec",
    "max_read_requests_per_sec",
    "max_connections_per_sec",
    "max_channels_per_connection",
    "max_subscriptions_per_sec",
    "max_inbound_messages_per_sec",
    "history_size",
    "history_ttl",
    "idempotency_ttl",
)

# Integer settings that take -1 (UNLIMITED) for "no limit".
UNLIMITED_SETTINGS: Final = (
    "max_connections",
    "max_messages_per_day",
    "max_backend_events_per_sec",
    "max_app_client_events_per_sec",
    "max_read_requests_per_sec",
    "max_connections_per_sec",
)

# Settings that take a list of strings: a JSON or TOML array, or a comma-separated list.
LIST_SETTINGS: Final = ("allowed_origins", "history_channels")

# Settings that take one of a few strings.
CHOICE_SETTINGS: Final[Mapping[str, tuple[str, ...]]] = {"slow_client_policy": SLOW_CLIENT_POLICIES}
