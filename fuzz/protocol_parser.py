"""Coverage-guided fuzzing of the protocol core's input parsers with atheris (libFuzzer).

Each input goes, as it is, through everything that parses what a client or caller sends:

1. the WebSocket frame reader, whole and split in two (both must give the same events); each
   text message then goes to `Connection.receive` of a connection that is signed in and
   subscribed to a private and a presence channel, so client events and presence are reachable
   (subscriptions are accepted with the presence roster a node would send);
2. `Connection.receive` with the input decoded as text;
3. the HTTP API validators: the input as a trigger and a batch body, and as a query string for
   the signature check and the channel queries.

Refusals are fine (`Failed` events, pusher:error frames, `ApiError`); anything raised is a crash,
and so is a frame a client could not parse. libFuzzer then stops, writes the input to
`.fuzz/crash-<sha1>` and exits non-zero. Found crashes, once fixed, join the seeds.

Run it with `make fuzz` (FUZZ_SECONDS=60 by default), or by hand:
    python fuzz/protocol_parser.py .fuzz/corpus fuzz/seeds -max_total_time=60
The first directory collects new inputs; the seeds are only read.
"""

from __future__ import annotations

import contextlib
import sys
from urllib.parse import parse_qsl

try:
    import atheris
except ImportError:  # only built for x86_64 CPython < 3.13 (see pyproject's test extra)
    print("fuzz: skipped, atheris is not installed for this platform", file=sys.stderr)
    sys.exit(0)

import json_mutator  # fuzz/, next to this file; not instrumented: it is not under test

with atheris.instrument_imports():
    import orjson

    from ressonance.protocol import rest
    from ressonance.protocol.app import App
    from ressonance.protocol.connection import Connection, SubscribeRequested
    from ressonance.protocol.errors import ApiError
    from ressonance.protocol.messages import presence_roster
    from ressonance.protocol.signing import channel_auth, user_auth, verify_request
    from ressonance.protocol.websocket import FrameReader, TextReceived

APP = App(id="1", key="app-key", secret="app-secret", enable_client_messages=True, watchlist=True)
SOCKET_ID = "1.1"
NOW = 1_700_000_000.0
MAX_MESSAGE_BYTES = 64 * 1024
USER_DATA = '{"id":"7","user_info":{"name":"A"}}'
MEMBER = '{"user_id":"7","user_info":{"name":"A"}}'
# What a signed-in client subscribed to private-chat and presence-room has sent.
OPENING = [
    orjson.dumps(message).decode()
    for message in (
        {
            "event": "pusher:signin",
            "data": {
                "auth": user_auth(APP.key, APP.secret, SOCKET_ID, USER_DATA),
                "user_data": USER_DATA,
            },
        },
        {
            "event": "pusher:subscribe",
            "data": {
                "channel": "private-chat",
                "auth": channel_auth(APP.key, APP.secret, SOCKET_ID, "private-chat"),
            },
        },
        {
            "event": "pusher:subscribe",
            "data": {
                "channel": "presence-room",
                "auth": channel_auth(APP.key, APP.secret, SOCKET_ID, "presence-room", MEMBER),
                "channel_data": MEMBER,
            },
        },
    )
]


def connection() -> Connection:
    """A connection past OPENING."""
    conn = Connection(APP, SOCKET_ID, NOW)
    for text in OPENING:
        receive(conn, text)
    return conn


def receive(conn: Connection, text: str) -> None:
    """`text` received; subscriptions accepted with the roster a node would send."""
    for event in conn.receive(text, NOW):
        if isinstance(event, SubscribeRequested):
            member = event.member
            roster = None if member is None else presence_roster({member.user_id: member.user_info})
            conn.subscription_succeeded(event.channel, member, roster)
    for frame in conn.data_to_send():
        message = orjson.loads(frame)
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            raise AssertionError(f"not a Pusher message: {frame!r}")


def frames(data: bytes) -> None:
    events = FrameReader(MAX_MESSAGE_BYTES).feed(data)
    half = len(data) // 2
    reader = FrameReader(MAX_MESSAGE_BYTES)
    if reader.feed(data[:half]) + reader.feed(data[half:]) != events:
        raise AssertionError("the frame reader's events depend on how the bytes arrive")
    conn = connection()
    for event in events:
        if isinstance(event, TextReceived):
            receive(conn, event.text)


def http_api(data: bytes, text: str) -> None:
    query = dict(parse_qsl(text, keep_blank_values=True))
    channel = query.get("channel", "")
    checks = (
        lambda: rest.parse_trigger(data, APP),
        lambda: rest.parse_batch(data, APP),
        lambda: verify_request(
            key=APP.key,
            secret=APP.secret,
            method="POST",
            path="/apps/1/events",
            params=query,
            body=data,
            now=NOW,
        ),
        lambda: rest.parse_channels_query(query),
        lambda: rest.parse_channel_query(channel, query, APP),
        lambda: rest.require_presence(channel, APP),
        lambda: rest.validate_user_id(channel),
    )
    for check in checks:
        with contextlib.suppress(ApiError):  # a refusal, as the API answers with a 4xx
            check()


def test_one_input(data: bytes) -> None:
    text = data.decode(errors="replace")
    frames(data)
    receive(connection(), text)
    http_api(data, text)


def json_aware_mutation(data: bytes, max_size: int, seed: int) -> bytes:
    return json_mutator.mutate(data, max_size, seed, atheris.Mutate)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input, custom_mutator=json_aware_mutation)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
