"""What a pusher-js client sends and what it should receive, for the Connection tests.

Client frames are built the way pusher-js builds them (§2); tokens are made with
`ressonance.protocol.signing` as an app's auth endpoint would. Server frames are decoded
JSON, compared whole.
"""

from __future__ import annotations

import orjson

from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.connection import Connection, SignedIn, SubscribeRequested
from ressonance.protocol.signing import channel_auth, user_auth

# The reference's test credentials (§4).
KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"
SOCKET_ID = "1234.1234"
T0 = 1_000.0

Frame = dict[str, object]


def make_app(**settings: object) -> App:
    return App(id="1", key=KEY, secret=SECRET, **settings)  # type: ignore[arg-type]


def connect(app: App | None = None, now: float = T0) -> Connection:
    """A connection whose pusher:connection_established has already been sent."""
    conn = Connection(app or make_app(), SOCKET_ID, now)
    conn.data_to_send()
    return conn


def frames(conn: Connection) -> list[Frame]:
    return [orjson.loads(frame) for frame in conn.data_to_send()]


def text(event: str, data: object = None, channel: str | None = None) -> str:
    message: Frame = {"event": event}
    if data is not None:
        message["data"] = data
    if channel is not None:
        message["channel"] = channel
    return orjson.dumps(message).decode()


def subscribe(channel: str, auth: str | None = "", channel_data: str | None = None) -> str:
    data: Frame = {"channel": channel}
    if auth is not None:
        data["auth"] = auth
    if channel_data is not None:
        data["channel_data"] = channel_data
    return text(m.SUBSCRIBE, data)


def signed_subscribe(channel: str, channel_data: str | None = None) -> str:
    """What pusher-js sends with the token the app's auth endpoint returned."""
    return subscribe(
        channel, channel_auth(KEY, SECRET, SOCKET_ID, channel, channel_data or ""), channel_data
    )


def signin(user_data: str, auth: str | None = None) -> str:
    token = user_auth(KEY, SECRET, SOCKET_ID, user_data) if auth is None else auth
    return text(m.SIGNIN, {"auth": token, "user_data": user_data})


def client_event(channel: str, event: str = "client-typing", data: object = None) -> str:
    return text(event, data, channel)


def presence_data(user_id: object, user_info: object = None) -> str:
    data: Frame = {"user_id": user_id}
    if user_info is not None:
        data["user_info"] = user_info
    return orjson.dumps(data).decode()


def nested_json(levels: int) -> str:
    """A JSON array `levels` deep: `[[[...]]]`."""
    return "[" * levels + "]" * levels


def member_of_size(size: int) -> str:
    """channel_data for user "7" exactly `size` characters long."""
    data = presence_data("7", "x" * (size - len(presence_data("7", ""))))
    assert len(data) == size
    return data


def join(conn: Connection, channel: str, channel_data: str | None = None, now: float = T0) -> None:
    """Subscribe as pusher-js would and have the node accept."""
    needs_signature = classify(channel).needs_auth
    request = signed_subscribe(channel, channel_data) if needs_signature else subscribe(channel)
    [event] = conn.receive(request, now)
    assert isinstance(event, SubscribeRequested)
    conn.subscription_succeeded(event.channel, event.member, None)
    conn.data_to_send()


def sign_in(conn: Connection, user_data: str, now: float = T0) -> None:
    [event] = conn.receive(signin(user_data), now)
    assert isinstance(event, SignedIn)
    conn.data_to_send()


def error(message: str, code: int | None = None, channel: str | None = None) -> Frame:
    frame: Frame = {"event": "pusher:error", "data": {"code": code, "message": message}}
    if channel is not None:
        frame["channel"] = channel
    return frame


def subscription_error(channel: str, kind: str, message: str, status: int) -> Frame:
    return {
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": kind, "error": message, "status": status},
    }


def succeeded(channel: str, data: str = "{}") -> Frame:
    return {"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": data}


PONG: Frame = {"event": "pusher:pong", "data": "{}"}
PING: Frame = {"event": "pusher:ping", "data": "{}"}
