"""Validation of HTTP API requests (reference §5), before anything is published.

Every problem raises `ApiError` with the status Pusher documents: 400 for a malformed
request, 413 for a payload over the app's limit. Bodies reach this module already bounded
in size by the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

import orjson

from ressonance.protocol.app import App
from ressonance.protocol.channels import channel_name_problem, classify
from ressonance.protocol.errors import ApiError

SOCKET_ID_RE: Final = re.compile(r"\d+\.\d+")
# An Idempotency-Key (IETF httpapi draft): up to 255 visible ASCII characters.
IDEMPOTENCY_KEY_RE: Final = re.compile(r"[\x21-\x7e]{1,255}")
HISTORY_LIMIT: Final = 100  # events a history read answers when it names no limit
MAX_HISTORY_LIMIT: Final = 1000
TRIGGER_INFO: Final = frozenset({"user_count", "subscription_count"})
# A publish may also ask for the serial each channel that keeps history gave the event.
PUBLISH_INFO: Final = TRIGGER_INFO | {"serial"}
CHANNEL_INFO: Final = frozenset({"user_count", "subscription_count", "cache"})


@dataclass(slots=True)  # not frozen: one per publish, and a frozen __init__ costs ~2 %
class Trigger:
    """One event to publish: `data` is the string relayed verbatim to subscribers (read,
    never changed)."""

    name: str
    data: str
    channels: tuple[str, ...]
    socket_id: str | None
    info: frozenset[str]
    # The body's `idempotency_key` (for SDKs that cannot set the Idempotency-Key header);
    # in a batch, the batch's own, on each of its events.
    idempotency_key: str | None = None


def parse_json_object(body: bytes) -> dict[str, object]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return value


def parse_trigger(body: bytes, app: App) -> Trigger:
    """Validate the body of POST /apps/{id}/events (`channels` or `channel`, §5.1)."""
    return _trigger(parse_json_object(body), app, allow_many=True)


def parse_batch(body: bytes, app: App) -> list[Trigger]:
    """Validate the body of POST /apps/{id}/batch_events (§5.2)."""
    document = parse_json_object(body)
    key = idempotency_key(document.get("idempotency_key"))
    batch = document.get("batch")
    if not isinstance(batch, list) or not batch:
        raise ApiError(400, "'batch' must be a non-empty list of events")
    if len(batch) > app.max_event_batch_size:
        raise ApiError(
            400, f"Batch has {len(batch)} events; the limit is {app.max_event_batch_size}"
        )
    triggers = []
    for index, item in enumerate(batch):
        if not isinstance(item, dict):
            raise ApiError(400, f"batch[{index}] must be an object")
        try:
            trigger = _trigger(item, app, allow_many=False)
        except ApiError as exc:
            raise ApiError(exc.status, f"batch[{index}]: {exc.message}") from None
        triggers.append(trigger if key is None else replace(trigger, idempotency_key=key))
    return triggers


def _trigger(body: Mapping[str, object], app: App, *, allow_many: bool) -> Trigger:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "'name' must be a non-empty string")
    if len(name) > app.max_event_name_length:
        raise ApiError(400, f"Event name is longer than {app.max_event_name_length} characters")
    data = body.get("data")
    if not isinstance(data, str):
        raise ApiError(400, "'data' must be a string (JSON-encode objects first)")
    if len(data.encode()) > app.max_payload_bytes:
        raise ApiError(413, f"Event data is larger than {app.max_event_payload_in_kb} KB")
    channels = _channels(body, app, allow_many=allow_many)
    socket_id = body.get("socket_id")
    if socket_id is not None and (
        not isinstance(socket_id, str) or not SOCKET_ID_RE.fullmatch(socket_id)
    ):
        raise ApiError(400, "'socket_id' must look like 123.456")
    info = _info(body.get("info"), PUBLISH_INFO)
    key = idempotency_key(body.get("idempotency_key")) if allow_many else None
    return Trigger(name, data, channels, socket_id, info, key)


def idempotency_key(value: object) -> str | None:
    """An `Idempotency-Key` header or `idempotency_key` field, checked; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise ApiError(400, "Idempotency key must be 1 to 255 visible ASCII characters")
    return value


def _channels(body: Mapping[str, object], app: App, *, allow_many: bool) -> tuple[str, ...]:
    raw = body.get("channels") if allow_many and "channels" in body else body.get("channel")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'channels' must be a non-empty list of channel names")
    if len(raw) > app.max_event_channels_at_once:
        raise ApiError(
            400, f"Too many channels ({len(raw)}); the limit is {app.max_event_channels_at_once}"
        )
    for channel in raw:
        problem = channel_name_problem(channel, app.max_channel_name_length)
        if problem is not None:
            raise ApiError(400, f"{problem}: {str(channel)[:50]!r}")
    return tuple(raw)


def _info(raw: object, allowed: frozenset[str]) -> frozenset[str]:
    if raw is None or raw == "":
        return frozenset()
    if not isinstance(raw, str):
        raise ApiError(400, "'info' must be a comma-separated string")
    wanted = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = wanted - allowed
    if unknown:
        raise ApiError(400, f"Unknown info attribute(s): {', '.join(sorted(unknown))}")
    return wanted


def parse_channels_query(query: Mapping[str, str]) -> tuple[str, frozenset[str]]:
    """GET /channels: `filter_by_prefix` and `info`; user_count needs a presence- filter."""
    prefix = query.get("filter_by_prefix", "")
    info = _info(query.get("info"), TRIGGER_INFO)
    if "user_count" in info and not prefix.startswith("presence-"):
        raise ApiError(400, "info=user_count requires filter_by_prefix=presence-")
    return prefix, info


def parse_channel_query(channel: str, query: Mapping[str, str], app: App) -> frozenset[str]:
    """GET /channels/{name}: validate the name and the attributes asked for (§5.4)."""
    problem = channel_name_problem(channel, app.max_channel_name_length)
    if problem is not None:
        raise ApiError(400, problem)
    info = _info(query.get("info"), CHANNEL_INFO)
    kind = classify(channel)
    if "user_count" in info and not kind.is_presence:
        raise ApiError(400, "user_count is only available for presence channels")
    if "cache" in info and not kind.cached:
        raise ApiError(400, "cache is only available for cache channels")
    return info


def require_presence(channel: str, app: App) -> None:
    """GET /channels/{name}/users is for presence channels only (§5.5)."""
    problem = channel_name_problem(channel, app.max_channel_name_length)
    if problem is not None:
        raise ApiError(400, problem)
    if not classify(channel).is_presence:
        raise ApiError(400, "Users can only be listed for presence channels")


def validate_user_id(user_id: str) -> None:
    if not 0 < len(user_id) <= 128:
        raise ApiError(400, "User id must be 1 to 128 characters")


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """GET /channels/{name}/history: serials `after` < s < `before`, at most `limit`; the
    newest first when it names no `after` (the last page), else the oldest first."""

    after: int | None
    before: int | None
    limit: int

    @property
    def newest(self) -> bool:
        return self.after is None


def parse_history_query(channel: str, query: Mapping[str, str], app: App) -> HistoryQuery:
    """Validate a history read: the channel name, `after` and `before` serials, `limit`."""
    problem = channel_name_problem(channel, app.max_channel_name_length)
    if problem is not None:
        raise ApiError(400, problem)
    after, before = _serial(query, "after"), _serial(query, "before")
    limit = _serial(query, "limit")
    if limit is None:
        limit = HISTORY_LIMIT
    elif not 0 < limit <= MAX_HISTORY_LIMIT:
        raise ApiError(400, f"'limit' must be 1 to {MAX_HISTORY_LIMIT}")
    if after is not None and before is not None and before <= after:
        raise ApiError(400, "'before' must be greater than 'after'")
    return HistoryQuery(after, before, limit)


def _serial(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 16:
        raise ApiError(400, f"'{name}' must be a non-negative integer")
    return int(text)
