"""Hypothesis strategies for what clients send: JSON values and near-valid Pusher messages.

A generated message is an intent (`Subscribe`, `Signin`, ...) that `render` turns into the text
of one frame for one connection, so a token is signed for the socket id the server gave, or
deliberately not. Shrinking then works on intents, and a failure reads as a client's story.
Channel names are drawn from a small pool per example, so a session subscribes to a channel
and then uses it.

The texts include what a hostile client would try: truncated JSON, deep nesting, numbers past
64 bits or past a double, lone surrogates (escaped, and raw in the string), wrong types.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass

from hypothesis import strategies as st

from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.signing import channel_auth, user_auth

NAME_ALPHABET = string.ascii_letters + string.digits + "-_=@,.;"
PREFIXES = (
    "",
    "private-",
    "presence-",
    "private-encrypted-",
    "cache-",
    "private-cache-",
    "presence-cache-",
    "private-encrypted-cache-",
    "#server-to-user-",
)
EVENTS = (
    "pusher:ping",
    "pusher:pong",
    "pusher:subscribe",
    "pusher:unsubscribe",
    "pusher:signin",
    "pusher:error",
    "pusher_internal:subscription_succeeded",
    "client-typing",
)

# Any string, lone surrogates included (a str the server gets never has them; orjson refuses).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
names = st.text(NAME_ALPHABET, min_size=1, max_size=12)


def nested(depth: int, leaf: object = None) -> object:
    """`depth` lists or objects inside each other, around `leaf`."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def json_values_of(texts: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    """JSON values with strings from `texts`, numbers past 64 bits, and deep nesting."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63 - 2, max_value=2**65),  # around the 64-bit limits
        st.integers(min_value=-(2**65), max_value=-(2**63) + 2),
        st.floats(allow_nan=False, allow_infinity=False),
        texts,
    )
    return st.one_of(
        st.recursive(
            scalars,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
            max_leaves=8,
        ),
        st.integers(1, 600).map(nested),  # deeper than an encoder may go
    )


json_values = json_values_of(any_text)


def dumps(value: object, ascii_only: bool = True) -> str:
    """JSON text; `ascii_only` writes lone surrogates as `\\ud800` escapes, not raw."""
    return json.dumps(value, ensure_ascii=ascii_only)


user_ids = st.one_of(
    names,
    st.text(NAME_ALPHABET, min_size=120, max_size=140),  # around the 128-character limit
    any_text,
    st.integers(),
    json_values,
)
presence_data = st.one_of(
    st.builds(lambda uid, info: dumps({"user_id": uid, "user_info": info}), user_ids, json_values),
    st.builds(lambda uid: dumps({"user_id": uid}), user_ids),
    st.builds(lambda n: dumps({"user_id": "u", "user_info": "x" * n}), st.integers(1000, 1100)),
    json_values.map(dumps),
    any_text,
)
user_data = st.one_of(
    st.builds(
        lambda uid, info, watchlist: dumps({"id": uid, "user_info": info, "watchlist": watchlist}),
        user_ids,
        json_values,
        st.lists(user_ids, max_size=3) | json_values,
    ),
    st.builds(lambda uid: dumps({"id": uid}), user_ids),
    json_values.map(dumps),
    any_text,
)


def channel_names(pool: Pool) -> st.SearchStrategy[str]:
    """Mostly names from `pool`; sometimes any name, valid or not, or one near the limit."""
    return st.one_of(
        st.sampled_from(pool.channels),
        st.sampled_from(pool.channels),
        st.builds(str.__add__, st.sampled_from(PREFIXES), any_text),
        st.builds(lambda p, n: p + "a" * n, st.sampled_from(PREFIXES), st.integers(180, 220)),
    )


@dataclass(frozen=True)
class Pool:
    """The few channels and users one example is about, so that its messages meet."""

    channels: list[str]
    users: list[str]


# Mostly the channels client events are for (private and presence), and one user's channel.
pool_prefixes = (
    st.sampled_from(PREFIXES[1:3]) | st.sampled_from(PREFIXES[1:3]) | st.sampled_from(PREFIXES[:-1])
)
pools = st.builds(
    lambda channels, users: Pool([*channels, f"#server-to-user-{users[0]}"], users),
    st.lists(st.builds(str.__add__, pool_prefixes, names), min_size=1, max_size=3),
    st.lists(names, min_size=1, max_size=2),
)


# --- intents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe:
    """pusher:subscribe; `signed` sends the token an app's auth endpoint would return."""

    channel: str
    signed: bool
    channel_data: str | None = None
    auth: object = ""  # sent instead when not signed
    data_as_text: bool = False  # `data` JSON-encoded, as some clients send it


@dataclass(frozen=True)
class Unsubscribe:
    channel: object


@dataclass(frozen=True)
class Signin:
    user_data: str
    signed: bool
    auth: object = ""


@dataclass(frozen=True)
class ClientEvent:
    channel: object
    event: str
    data: object


@dataclass(frozen=True)
class Envelope:
    """Any JSON object with a Pusher-looking `event`, rendered as is."""

    value: dict[str, object]


@dataclass(frozen=True)
class Raw:
    """Text that may not be JSON at all."""

    text: str


Intent = Subscribe | Unsubscribe | Signin | ClientEvent | Envelope | Raw


def _encodable(text: str) -> bool:
    """Whether `text` is valid UTF-8 (a lone surrogate is not)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def render(intent: Intent, app: App, socket_id: str, ascii_only: bool = True) -> str:
    """The text of the frame a client would send for `intent` on connection `socket_id`."""
    match intent:
        case Subscribe(channel, signed, channel_data, auth, data_as_text):
            if signed and _encodable(channel + (channel_data or "")):  # else none could sign it
                auth = channel_auth(app.key, app.secret, socket_id, channel, channel_data or "")
            data: dict[str, object] = {"channel": channel, "auth": auth}
            if channel_data is not None:
                data["channel_data"] = channel_data
            body: object = dumps(data, ascii_only) if data_as_text else data
            return dumps({"event": "pusher:subscribe", "data": body}, ascii_only)
        case Unsubscribe(channel):
            return dumps({"event": "pusher:unsubscribe", "data": {"channel": channel}}, ascii_only)
        case Signin(user_data, signed, auth):
            if signed:
                auth = user_auth(app.key, app.secret, socket_id, user_data)
            data = {"auth": auth, "user_data": user_data}
            return dumps({"event": "pusher:signin", "data": data}, ascii_only)
        case ClientEvent(channel, event, data):
            return dumps({"event": event, "channel": channel, "data": data}, ascii_only)
        case Envelope(value):
            return dumps(value, ascii_only)
        case Raw(text):
            return text


def intents(pool: Pool) -> st.SearchStrategy[Intent]:
    """Client messages about the channels and users in `pool` (and others): two thirds what
    pusher-js would send, a third near-valid."""
    return st.one_of(valid_intents(pool), valid_intents(pool), near_valid_intents(pool))


def valid_intents(pool: Pool) -> st.SearchStrategy[Intent]:
    channels = st.sampled_from(pool.channels)
    client_events = st.builds(ClientEvent, channels, st.just("client-typing"), json_values)
    return st.one_of(joins(pool), client_events, client_events, st.builds(Unsubscribe, channels))


def joins(pool: Pool) -> st.SearchStrategy[Intent]:
    """A signed pusher:signin or pusher:subscribe (with presence data when it needs some)."""
    users = st.sampled_from(pool.users)
    member = st.builds(
        lambda uid, info: dumps({"user_id": uid, "user_info": info}), users, json_values
    )
    return st.one_of(
        st.builds(
            lambda channel, channel_data: Subscribe(
                channel, True, channel_data if classify(channel).is_presence else None
            ),
            st.sampled_from(pool.channels),
            st.none() | member,
        ),
        st.builds(
            Signin,
            st.builds(
                lambda uid, info, watchlist: dumps(
                    {"id": uid, "user_info": info, "watchlist": watchlist}
                ),
                users,
                json_values,
                st.lists(users, max_size=2),
            ),
            st.just(True),
        ),
    )


def near_valid_intents(pool: Pool) -> st.SearchStrategy[Intent]:
    channels = channel_names(pool)
    return st.one_of(
        st.builds(
            Subscribe,
            channels,
            st.booleans(),
            st.none() | presence_data,
            any_text | json_values,
            st.booleans(),
        ),
        st.builds(Unsubscribe, channels | json_values),
        st.builds(Signin, user_data, st.booleans(), any_text | json_values),
        st.builds(
            ClientEvent,
            channels | json_values,
            st.sampled_from(["client-typing", "client-" + "e" * 200]) | any_text,
            json_values,
        ),
        st.builds(
            Envelope,
            st.fixed_dictionaries(
                {"event": st.sampled_from(EVENTS) | json_values},
                optional={"data": json_values, "channel": channels | json_values},
            ),
        ),
        st.builds(Raw, raw_texts),
    )


raw_texts = st.one_of(
    any_text,
    st.integers(1, 2000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 2000).map(lambda n: '{"event":"client-x","data":' + "[" * n + "]" * n + "}"),
    st.integers(1, 400).map(lambda n: '{"event":"pusher:ping","data":1' + "0" * n + "}"),
    st.sampled_from(
        [
            "",
            "{",
            "null",
            "1e999",
            "-1e999",
            "NaN",
            '"\\ud800"',
            '{"event":"\\udc00"}',
            '{"event":"pusher:subscribe","data":{"channel":"\\ud83d"}}',
            '{"event":"pusher:subscribe","data":"{\\"channel\\":1e999}"}',
            '{"event":"pusher:subscribe","data":"{"}',
            '{"event":"pusher:ping"}{"event":"pusher:ping"}',
            '{"event":"pusher:ping","event":"pusher:signin"}',
            "\ufeff{}",
        ]
    ),
)
