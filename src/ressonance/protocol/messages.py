"""Pusher messages: parsing what clients send, encoding what the server sends (reference §2).

Rules:
1. Server->client `data` is always a JSON-encoded string (reference §0.1).
2. Client->server `data` may be an object or a JSON string; both are accepted (§0.2).
3. Client-supplied strings that are signed (`channel_data`, `user_data`) are kept verbatim.
4. JSON a client sends is parsed up to 1024 levels deep but can be encoded only up to 255:
   what the server re-encodes (client event data, presence user_info) is checked for depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

from ressonance.protocol.errors import ProtocolError

CONNECTION_ESTABLISHED: Final = "pusher:connection_established"
ERROR: Final = "pusher:error"
PING: Final = "pusher:ping"
PONG: Final = "pusher:pong"
SUBSCRIBE: Final = "pusher:subscribe"
UNSUBSCRIBE: Final = "pusher:unsubscribe"
SIGNIN: Final = "pusher:signin"
SIGNIN_SUCCESS: Final = "pusher:signin_success"
SUBSCRIPTION_ERROR: Final = "pusher:subscription_error"
CACHE_MISS: Final = "pusher:cache_miss"
SUBSCRIPTION_SUCCEEDED: Final = "pusher_internal:subscription_succeeded"
MEMBER_ADDED: Final = "pusher_internal:member_added"
MEMBER_REMOVED: Final = "pusher_internal:member_removed"
SUBSCRIPTION_COUNT: Final = "pusher_internal:subscription_count"
WATCHLIST_EVENTS: Final = "pusher_internal:watchlist_events"
CLIENT_EVENT_PREFIX: Final = "client-"
MAX_SERIAL: Final = 2**53 - 1  # a history serial: what a JSON number carries exactly

JsonObject = dict[str, object]


# --- client -> server -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    auth: str
    channel_data: str | None
    resume_after: int | None = None  # the last serial a reconnecting client saw (history)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class Signin:
    auth: str
    user_data: str


@dataclass(frozen=True, slots=True)
class ClientEvent:
    channel: str
    event: str
    data: object


ClientMessage = Ping | Pong | Subscribe | Unsubscribe | Signin | ClientEvent


def parse_client_message(text: str) -> ClientMessage:
    """Parse one text frame from a client.

    Raises:
        ProtocolError: the frame is not a Pusher message; the message says why.
    """
    try:
        envelope = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("Invalid JSON: the message could not be parsed") from None
    if not isinstance(envelope, dict):
        raise ProtocolError("Invalid message: expected a JSON object")
    event = envelope.get("event")
    if not isinstance(event, str) or not event:
        raise ProtocolError("Invalid message: the 'event' property must be a non-empty string")
    if event.startswith(CLIENT_EVENT_PREFIX):
        return _parse_client_event(envelope, event)
    match event:
        case "pusher:ping":
            return Ping()
        case "pusher:pong":
            return Pong()
        case "pusher:subscribe":
            return _parse_subscribe(_data_object(envelope))
        case "pusher:unsubscribe":
            return Unsubscribe(_string_field(_data_object(envelope), "channel"))
        case "pusher:signin":
            data = _data_object(envelope)
            return Signin(_string_field(data, "auth"), _string_field(data, "user_data"))
    raise ProtocolError(f"Unsupported event '{event[:100]}'")


def _parse_client_event(envelope: JsonObject, event: str) -> ClientEvent:
    channel = envelope.get("channel")
    if not isinstance(channel, str):
        raise ProtocolError("Client event without a 'channel'")
    return ClientEvent(channel, event, envelope.get("data"))


def _parse_subscribe(data: JsonObject) -> Subscribe:
    channel = _string_field(data, "channel")
    auth = data.get("auth", "")
    channel_data = data.get("channel_data")
    if not isinstance(auth, str):
        raise ProtocolError("'auth' must be a string", channel=channel)
    if channel_data is not None and not isinstance(channel_data, str):
        raise ProtocolError("'channel_data' must be a JSON string", channel=channel)
    resume_after = data.get("resume_after")
    if resume_after is not None and (
        isinstance(resume_after, bool)
        or not isinstance(resume_after, int)
        or not 0 <= resume_after <= MAX_SERIAL
    ):
        raise ProtocolError("'resume_after' must be a serial (an integer >= 0)", channel=channel)
    return Subscribe(channel, auth, channel_data, resume_after)


def _data_object(envelope: JsonObject) -> JsonObject:
    data = envelope.get("data")
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProtocolError("Invalid 'data': not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"Invalid 'data' for {envelope['event']}: expected an object")
    return data


def _string_field(data: JsonObject, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ProtocolError(f"'{name}' must be a string")
    return value


def nested_deeper_than(value: object, levels: int) -> bool:
    """Whether parsed JSON `value` has arrays or objects more than `levels` deep.

    The parser accepts 1024 levels, the encoder only 255: a value the server sends back
    inside its own messages must be checked first (rule 4).
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > levels:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# --- server -> client -------------------------------------------------------------------


def encode(
    event: str, data: object = None, channel: str | None = None, serial: int | None = None
) -> bytes:
    """Encode a server message; `data` that is not already a string is JSON-encoded first.
    A history `serial` is the last field (`protocol.history`)."""
    message: JsonObject = {"event": event}
    if channel is not None:
        message["channel"] = channel
    if data is not None:
        message["data"] = data if isinstance(data, str) else orjson.dumps(data).decode()
    if serial is not None:
        message["serial"] = serial
    return orjson.dumps(message)


def encode_channel_event(
    channel: str, event: str, data: object, user_id: str | None = None, serial: int | None = None
) -> bytes:
    """A channel event; `data` is relayed as given (a string from the HTTP API, §2.3). An
    event of a channel that keeps history carries its `serial`, last (`protocol.history`)."""
    message: JsonObject = {"event": event, "channel": channel, "data": data}
    if user_id is not None:
        message["user_id"] = user_id
    if serial is not None:
        message["serial"] = serial
    return orjson.dumps(message)


def connection_established(socket_id: str, activity_timeout: int) -> bytes:
    return encode(
        CONNECTION_ESTABLISHED, {"socket_id": socket_id, "activity_timeout": activity_timeout}
    )


def error(message: str, code: int | None, channel: str | None = None) -> bytes:
    """pusher:error; `data` is an object, as Soketi sends and pusher-js reads (§2.1)."""
    payload: JsonObject = {"event": ERROR, "data": {"code": code, "message": message}}
    if channel is not None:
        payload["channel"] = channel
    return orjson.dumps(payload)


def subscription_error(channel: str, kind: str, message: str, status: int) -> bytes:
    """Channel-scoped pusher:subscription_error that pusher-js and Echo surface (§2.2)."""
    return orjson.dumps(
        {
            "event": SUBSCRIPTION_ERROR,
            "channel": channel,
            "data": {"type": kind, "error": message, "status": status},
        }
    )


def presence_roster(members: dict[str, object]) -> JsonObject:
    """The `presence` data of a presence subscription_succeeded (§2.2)."""
    return {"presence": {"ids": list(members), "hash": members, "count": len(members)}}


PONG_MESSAGE: Final = encode(PONG, {})
PING_MESSAGE: Final = encode(PING, {})
