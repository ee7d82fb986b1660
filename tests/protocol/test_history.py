"""Channel history in the protocol (protocol/history.py): patterns, serials in frames, and
the resume extension of pusher:subscribe and subscription_succeeded."""

from __future__ import annotations

import orjson
import pytest

from ressonance.protocol import history, messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.connection import SubscribeRequested
from ressonance.protocol.errors import ProtocolError
from ressonance.protocol.frames import text_frame
from tests.protocol.wire import connect

KEEPING = App(id="1", key="k", secret="s", history_channels=("chat-*", "private-*-orders", "news"))


@pytest.mark.parametrize(
    ("channel", "kept"),
    [
        ("chat-1", True),
        ("chat-", True),
        ("chat", False),
        ("private-shop-orders", True),
        ("private-orders", False),
        ("news", True),
        ("newsroom", False),
        ("presence-chat-1", False),
    ],
)
def test_history_patterns_name_the_channels_that_keep_history(channel: str, kept: bool) -> None:
    assert history.keeps_history(KEEPING, channel) is kept


def test_an_app_without_patterns_keeps_no_history() -> None:
    assert not history.keeps_history(App(id="1", key="k", secret="s"), "chat-1")


def test_an_event_of_a_history_channel_carries_its_serial_last() -> None:
    message = m.encode_channel_event("chat-1", "message", '{"serial":"1,\\"serial\\":2"}', serial=7)

    assert message == (
        b'{"event":"message","channel":"chat-1","data":"{\\"serial\\":\\"1,\\\\\\"serial'
        b'\\\\\\":2\\"}","serial":7}'
    )
    assert orjson.loads(message)["serial"] == 7


@pytest.mark.parametrize(
    ("message", "serial"),
    [
        (m.encode_channel_event("chat-1", "e", "x", serial=1733430000123456), 1733430000123456),
        (m.encode_channel_event("chat-1", "e", "x" * 70_000, serial=3), 3),  # a 64-bit length
        (m.encode_channel_event("chat-1", "e", ',"serial":5}'), None),  # inside data: escaped
        (m.encode_channel_event("chat-1", "e", "x"), None),
        (m.encode(m.MEMBER_ADDED, {"user_id": "1"}, "chat-1"), None),
        (b'{"event":"e","serial":"7"}', None),
        (b'{"event":"e","serial":}', None),
        (b"", None),
    ],
)
def test_the_serial_of_a_frame_is_read_from_its_end(message: bytes, serial: int | None) -> None:
    assert history.serial_of(text_frame(message)) == serial


def test_resume_failed_is_a_channel_event_with_the_reason_and_the_serials() -> None:
    message = orjson.loads(history.resume_failed("chat-1", history.TOO_OLD, 40, 90))

    assert message["event"] == "ressonance:resume_failed"
    assert message["channel"] == "chat-1"
    assert orjson.loads(message["data"]) == {"reason": "too_old", "resume_after": 40, "serial": 90}


def subscribe_text(data: dict[str, object]) -> str:
    return orjson.dumps({"event": "pusher:subscribe", "data": data}).decode()


def test_a_subscribe_may_ask_to_resume_after_a_serial() -> None:
    conn = connect()

    events = conn.receive(subscribe_text({"channel": "chat-1", "resume_after": 41}), 0.0)

    assert events == [SubscribeRequested(classify("chat-1"), None, 41)]


@pytest.mark.parametrize("value", [-1, 1.5, "41", True, 2**53, [1]])
def test_a_resume_serial_must_be_a_safe_non_negative_integer(value: object) -> None:
    with pytest.raises(ProtocolError, match="'resume_after' must be a serial") as caught:
        m.parse_client_message(subscribe_text({"channel": "chat-1", "resume_after": value}))

    assert caught.value.channel == "chat-1"


def test_subscription_succeeded_carries_the_channels_newest_serial_last() -> None:
    conn = connect()
    conn.receive(subscribe_text({"channel": "chat-1"}), 0.0)

    conn.subscription_succeeded(classify("chat-1"), None, None, 1733430000000090)

    assert conn.data_to_send() == [
        b'{"event":"pusher_internal:subscription_succeeded","channel":"chat-1","data":"{}",'
        b'"serial":1733430000000090}'
    ]
