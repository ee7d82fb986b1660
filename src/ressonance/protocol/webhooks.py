"""Webhooks as Pusher defines them (reference §6): endpoints, event objects and the signed body.

Rules:
1. Endpoints take Soketi's shape, so a Soketi app's `webhooks` can be copied as is:
   `{"url", "event_types", "filter": {"channel_name_starts_with", "channel_name_ends_with"},
   "headers"}`. Every problem raises `ConfigError` naming the field
   (`webhooks[1].event_types[0]: ...`). AWS Lambda endpoints (`lambda_function`) are refused.
2. An endpoint is known by its URL (`WebhookEndpoint.id`, a digest of it): an app may not
   list one URL twice, and changing an endpoint's event types, filter or headers keeps its
   queued events. Header values may hold credentials: they are kept out of reprs.
3. Events are the JSON objects of Pusher's table (§6) plus `id`, a stable identifier made once
   per event: retries and replays carry the same id, so receivers can deduplicate. The SDK
   validators check only the key, the signature and `time_ms`, so the extra field is harmless.
4. The body is `{"time_ms": ..., "events": [...]}`, built for each attempt: `time_ms` is when
   the request is made (the PyPI SDK refuses bodies more than 5 minutes old, and retries go
   on far longer), signed with the app secret (`signing.webhook_signature`).
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import orjson

from ressonance.protocol.channels import Channel, ChannelKind
from ressonance.protocol.errors import ConfigError

CHANNEL_OCCUPIED: Final = "channel_occupied"
CHANNEL_VACATED: Final = "channel_vacated"
MEMBER_ADDED: Final = "member_added"
MEMBER_REMOVED: Final = "member_removed"
CLIENT_EVENT: Final = "client_event"
CACHE_MISS: Final = "cache_miss"
SUBSCRIPTION_COUNT: Final = "subscription_count"
EVENT_TYPES: Final = (
    CHANNEL_OCCUPIED,
    CHANNEL_VACATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    CLIENT_EVENT,
    CACHE_MISS,
    SUBSCRIPTION_COUNT,
)

MAX_ENDPOINTS: Final = 10
MAX_URL_LENGTH: Final = 2048
MAX_FILTER_LENGTH: Final = 200
MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_LENGTH: Final = 1024
CONTENT_TYPE: Final = "application/json"  # exactly: the npm SDK compares the whole value

# Headers the server sets itself, or that would change how the request is framed or routed.
RESERVED_HEADERS: Final = frozenset(
    (
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "x-pusher-key",
        "x-pusher-signature",
    )
)
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENDPOINT_KEYS: Final = ("url", "event_types", "filter", "headers")
_FILTER_KEYS: Final = ("channel_name_starts_with", "channel_name_ends_with")


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """One URL an app's webhooks go to, the events it takes and the headers it is sent."""

    url: str
    event_types: tuple[str, ...]
    starts_with: str = ""
    ends_with: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def id(self) -> str:
        """A short, stable name of the endpoint (a digest of its URL, which it never shows)."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def wants(self, event_type: str, channel: str) -> bool:
        """Whether this endpoint takes `event_type` events of `channel` (its filter)."""
        return (
            event_type in self.event_types
            and channel.startswith(self.starts_with)
            and channel.endswith(self.ends_with)
        )

    def as_json(self) -> dict[str, object]:
        """The endpoint in Soketi's shape, as app stores keep it."""
        value: dict[str, object] = {"url": self.url, "event_types": list(self.event_types)}
        filters = {
            name: text
            for name, text in zip(_FILTER_KEYS, (self.starts_with, self.ends_with), strict=True)
            if text
        }
        if filters:
            value["filter"] = filters
        if self.headers:
            value["headers"] = dict(self.headers)
        return value


def endpoints_json(endpoints: Iterable[WebhookEndpoint]) -> list[dict[str, object]]:
    return [endpoint.as_json() for endpoint in endpoints]


def parse_endpoints(value: object, where: str = "webhooks") -> tuple[WebhookEndpoint, ...]:
    """The endpoints of a `webhooks` setting (a list in Soketi's shape), checked."""
    if isinstance(value, tuple) and all(isinstance(v, WebhookEndpoint) for v in value):
        return value  # already checked (a resolved app's own value)
    if not isinstance(value, list):
        raise ConfigError(f'{where}: must be a list of endpoints, like [{{"url": "https://..."')
    if len(value) > MAX_ENDPOINTS:
        raise ConfigError(f"{where}: at most {MAX_ENDPOINTS} endpoints")
    endpoints: list[WebhookEndpoint] = []
    for index, item in enumerate(value):
        endpoint = _endpoint(item, f"{where}[{index}]")
        for earlier, other in enumerate(endpoints):
            if other.url == endpoint.url:
                raise ConfigError(
                    f"{where}[{index}].url: the same URL as {where}[{earlier}]; "
                    "list it once with all its event_types"
                )
        endpoints.append(endpoint)
    return tuple(endpoints)


def _endpoint(item: object, where: str) -> WebhookEndpoint:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be an object with url and event_types")
    for key in item:
        if key == "lambda_function" or key == "lambda":
            raise ConfigError(f"{where}.{key}: AWS Lambda endpoints are not supported; use url")
        if key not in _ENDPOINT_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (expected {', '.join(_ENDPOINT_KEYS)})")
    if "url" not in item:
        raise ConfigError(f"{where}.url: required")
    if "event_types" not in item:
        raise ConfigError(f"{where}.event_types: required, a list of {', '.join(EVENT_TYPES)}")
    starts_with, ends_with = _filter(item.get("filter", {}), f"{where}.filter")
    return WebhookEndpoint(
        url=_url(item["url"], f"{where}.url"),
        event_types=_event_types(item["event_types"], f"{where}.event_types"),
        starts_with=starts_with,
        ends_with=ends_with,
        headers=_headers(item.get("headers", {}), f"{where}.headers"),
    )


def _url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be an http:// or https:// URL")
    if len(value) > MAX_URL_LENGTH:
        raise ConfigError(f"{where}: at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ConfigError(f"{where}: must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{where}: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}: must be an http:// or https:// URL")
    if not parts.hostname:
        raise ConfigError(f"{where}: has no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where}: must not hold credentials; send them in headers")
    if parts.fragment:
        raise ConfigError(f"{where}: must not have a #fragment")
    return value


def _event_types(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: must be a non-empty list of {', '.join(EVENT_TYPES)}")
    for index, name in enumerate(value):
        if name not in EVENT_TYPES:
            shown = name[:40] if isinstance(name, str) else name
            raise ConfigError(
                f"{where}[{index}]: unknown event type {shown!r} "
                f"(expected one of {', '.join(EVENT_TYPES)})"
            )
        if value.index(name) != index:
            raise ConfigError(f"{where}[{index}]: {name} is listed twice")
    return tuple(value)


def _filter(value: object, where: str) -> tuple[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be an object with {' and/or '.join(_FILTER_KEYS)}")
    for key, text in value.items():
        if key not in _FILTER_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (expected {', '.join(_FILTER_KEYS)})")
        if not isinstance(text, str) or len(text) > MAX_FILTER_LENGTH:
            raise ConfigError(f"{where}.{key}: must be a string of at most {MAX_FILTER_LENGTH}")
    return str(value.get(_FILTER_KEYS[0], "")), str(value.get(_FILTER_KEYS[1], ""))


def _headers(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f'{where}: must be an object of header names and values, like {{"X-A": "b"}}'
        )
    if len(value) > MAX_HEADERS:
        raise ConfigError(f"{where}: at most {MAX_HEADERS} headers")
    headers = []
    for name, text in value.items():
        # The value is never shown: it may be a credential.
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{where}: {str(name)[:40]!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise ConfigError(f"{where}.{name}: may not be set (the server sets or forbids it)")
        if not isinstance(text, str) or len(text) > MAX_HEADER_VALUE_LENGTH:
            raise ConfigError(
                f"{where}.{name}: must be a string of at most {MAX_HEADER_VALUE_LENGTH} characters"
            )
        if any(char in text for char in "\r\n\0"):
            raise ConfigError(f"{where}.{name}: must not contain line breaks or NUL")
        headers.append((name, text))
    return tuple(headers)


# --- which endpoints want the events of one channel ---------------------------------------


def lane_id(app_id: str, endpoint: WebhookEndpoint) -> str:
    """The queue of one endpoint of one app: its events, in the order they happened."""
    return f"{app_id}:{endpoint.id}"


def lane_app(lane: str) -> str:
    """The app id of a lane."""
    return lane.partition(":")[0]


def lane_endpoint(lane: str) -> str:
    """The endpoint id of a lane."""
    return lane.partition(":")[2]


@dataclass(frozen=True, slots=True)
class ChannelHooks:
    """The lanes (endpoints) that take each webhook event of one channel.

    Presence-derived events are recorded by the state store in the same step as the
    transition that causes them, so the store is handed this with each call.
    """

    occupied: tuple[str, ...] = ()
    vacated: tuple[str, ...] = ()
    member_added: tuple[str, ...] = ()
    member_removed: tuple[str, ...] = ()
    subscription_count: tuple[str, ...] = ()
    client_event: tuple[str, ...] = ()
    cache_miss: tuple[str, ...] = ()

    def lanes(self) -> tuple[str, ...]:
        """Every lane named here, once, in a stable order."""
        seen: dict[str, None] = {}
        for lanes in (
            self.occupied,
            self.vacated,
            self.member_added,
            self.member_removed,
            self.subscription_count,
            self.client_event,
            self.cache_miss,
        ):
            seen.update(dict.fromkeys(lanes))
        return tuple(seen)

    @property
    def has_store_events(self) -> bool:
        """Whether any lane takes an event that the presence store records."""
        return bool(
            self.occupied
            or self.vacated
            or self.member_added
            or self.member_removed
            or self.subscription_count
        )


NO_HOOKS: Final = ChannelHooks()


def channel_hooks(
    app_id: str, endpoints: Sequence[WebhookEndpoint], channel: Channel
) -> ChannelHooks:
    """The lanes that take each event of `channel`: by event type, filter and channel kind.

    Member events exist on presence channels only, subscription counts on the others
    (reference §6); a user's own channel (`#server-to-user-`) is not a channel to webhooks.
    """
    if not endpoints or channel.kind is ChannelKind.USER:
        return NO_HOOKS
    name = channel.name

    def lanes(event_type: str) -> tuple[str, ...]:
        return tuple(lane_id(app_id, e) for e in endpoints if e.wants(event_type, name))

    presence = channel.is_presence
    return ChannelHooks(
        occupied=lanes(CHANNEL_OCCUPIED),
        vacated=lanes(CHANNEL_VACATED),
        member_added=lanes(MEMBER_ADDED) if presence else (),
        member_removed=lanes(MEMBER_REMOVED) if presence else (),
        subscription_count=() if presence else lanes(SUBSCRIPTION_COUNT),
        client_event=lanes(CLIENT_EVENT),
        cache_miss=lanes(CACHE_MISS) if channel.cached else (),
    )


# --- events and the body ------------------------------------------------------------------


def event_ids() -> Callable[[], str]:
    """A source of event ids: 96 random bits as 24 hex digits (unique, not secret)."""
    ids = random.Random(secrets.randbits(128))
    return lambda: f"{ids.getrandbits(96):024x}"


def event_json(name: str, channel: str, event_id: str, **fields: object) -> bytes:
    """One event object (§6), with its `id`."""
    return orjson.dumps({"name": name, "channel": channel, **fields, "id": event_id})


def client_event_json(
    channel: str, event: str, data: object, socket_id: str, user_id: str | None, event_id: str
) -> bytes:
    """A `client_event` object: `data` as a string (an object is sent as its JSON text)."""
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    fields: dict[str, object] = {"event": event, "data": text, "socket_id": socket_id}
    if user_id is not None:
        fields["user_id"] = user_id
    return event_json(CLIENT_EVENT, channel, event_id, **fields)


def webhook_body(time_ms: int, events: Sequence[bytes]) -> bytes:
    """The request body: `{"time_ms": ..., "events": [...]}` around events already encoded."""
    return b'{"time_ms":%d,"events":[%b]}' % (time_ms, b",".join(events))
