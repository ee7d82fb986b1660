"""Structure-aware mutations for inputs that are JSON, or a WebSocket frame carrying JSON.

libFuzzer mutates bytes, and nearly every byte changed in a JSON document makes it invalid, so
the code behind the parser (what a valid message with one wrong value reaches) is rarely
exercised. This mutator, given to libFuzzer as its custom mutator, replaces, removes, inserts
or copies one value of the document with the Pusher protocol's own words and awkward values
(numbers past 64 bits, deep nesting, lone surrogates), and half of the time, or when the input
is not JSON, lets libFuzzer mutate the bytes.
"""

from __future__ import annotations

import copy
import json
import random
import struct
from collections.abc import Callable

Value = object
Slot = tuple[dict[str, Value] | list[Value], object]

KEYS = (
    "event", "data", "channel", "channels", "name", "socket_id", "info", "batch", "auth",
    "channel_data", "user_data", "user_id", "user_info", "id", "watchlist",
)  # fmt: skip
STRINGS = (
    "pusher:subscribe", "pusher:unsubscribe", "pusher:signin", "pusher:ping", "pusher:pong",
    "client-x", "private-chat", "presence-room", "private-encrypted-x", "cache-x",
    "#server-to-user-7", "1.1", "7", "app-key:00", "user_count", "subscription_count", "cache",
    "", " ", "a" * 201, "\ud800", "é", "\x00", '{"user_id":"7"}', '{"id":"7"}',
)  # fmt: skip
NUMBERS = (0, 1, -1, 2**63, 2**64, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308)


def mutate(data: bytes, max_size: int, seed: int, fallback: Callable[[bytes, int], bytes]) -> bytes:
    """A mutation of `data`: structural when it holds JSON and the seed says so."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return fallback(data, max_size)
    text, framed = _payload(data)
    try:
        document = json.loads(text)
        mutated = (
            _mutate(document, rng).encode() if framed is None else framed(_mutate(document, rng))
        )
    except (ValueError, RecursionError):  # not JSON, or not JSON Python writes back
        return fallback(data, max_size)
    return mutated if len(mutated) <= max_size else fallback(data, max_size)


def _payload(data: bytes) -> tuple[str, Callable[[str], bytes] | None]:
    """The JSON text in `data`, and how to frame a new one like it (None: not framed)."""
    if len(data) >= 6 and data[0] == 0x81 and data[1] & 0x80 and data[2:6] == b"\x00" * 4:
        length = data[1] & 0x7F
        if length < 126 and len(data) == 6 + length:
            return data[6:].decode(errors="replace"), _text_frame
    return data.decode(errors="replace"), None


def _text_frame(text: str) -> bytes:
    """A final text frame with a zero mask, so the payload stays readable (RFC 6455 §5.3)."""
    payload = text.encode(errors="surrogatepass")
    if len(payload) < 126:
        return bytes((0x81, 0x80 | len(payload))) + b"\x00" * 4 + payload
    if len(payload) < 1 << 16:
        return struct.pack("!BBH", 0x81, 0xFE, len(payload)) + b"\x00" * 4 + payload
    return struct.pack("!BBQ", 0x81, 0xFF, len(payload)) + b"\x00" * 4 + payload


def _mutate(document: Value, rng: random.Random) -> str:
    slots = _slots(document)
    if not slots:
        document = {"event": rng.choice(STRINGS), "data": _value(rng, [])}
    else:
        parent, key = rng.choice(slots)
        _change(parent, key, rng, slots)
    return json.dumps(document, ensure_ascii=rng.random() < 0.9)


def _change(
    parent: dict[str, Value] | list[Value], key: object, rng: random.Random, slots: list[Slot]
) -> None:
    operation = rng.randrange(4)
    if operation == 0 and isinstance(parent, dict):
        del parent[key]
    elif operation == 0 and isinstance(parent, list):
        parent.pop(key)
    elif operation == 1 and isinstance(parent, dict):
        parent[rng.choice(KEYS)] = _value(rng, slots)
    elif operation == 1 and isinstance(parent, list):
        parent.insert(key, _value(rng, slots))
    else:
        current = parent[key]
        parent[key] = _nested(current, rng) if isinstance(current, str) else _value(rng, slots)


def _nested(text: str, rng: random.Random) -> Value:
    """A string that holds JSON (channel_data, user_data, data) is mutated inside."""
    try:
        return _mutate(json.loads(text), rng)
    except (ValueError, RecursionError):
        return rng.choice(STRINGS)


def _value(rng: random.Random, slots: list[Slot]) -> Value:
    kind = rng.randrange(7)
    if kind == 0 and slots:
        parent, key = rng.choice(slots)
        return copy.deepcopy(parent[key])
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice((None, True, False, {}, []))
    if kind == 3:
        depth = rng.randrange(1, 400)
        return json.loads("[" * depth + "]" * depth)
    if kind == 4:
        return {rng.choice(KEYS): rng.choice(STRINGS)}
    return rng.choice(STRINGS)


def _slots(document: Value) -> list[Slot]:
    """Every (container, key) of the document, found without recursion."""
    slots: list[Slot] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            children = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        for key, child in children:
            slots.append((item, key))
            stack.append(child)
    return slots
