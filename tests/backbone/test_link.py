"""Reconnect backoff and log-safe URLs (backbone/link.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from ressonance.backbone.base import BackboneMessage, Topic
from ressonance.backbone.link import Backoff, LinkState, cancel_and_wait, deliver
from ressonance.backbone.wire import PREVIOUS_VERSION, encode_message

NEWS = Topic("1", "news")


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(0, 0.05, 0.1), (1, 0.1, 0.2), (3, 0.4, 0.8), (6, 2.5, 5.0), (1000, 2.5, 5.0)],
)
def test_the_delay_doubles_up_to_the_cap_and_jitters_in_its_upper_half(
    attempt: int, low: float, high: float
) -> None:
    backoff = Backoff(base=0.1, cap=5.0)
    assert Backoff(0.1, 5.0, uniform=lambda: 0.0).delay(attempt) == pytest.approx(low)
    assert Backoff(0.1, 5.0, uniform=lambda: 1.0).delay(attempt) == pytest.approx(high)
    assert low <= backoff.delay(attempt) <= high


def test_each_state_change_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    state = LinkState(logging.getLogger("test.link"), "redis", "redis://:pw@h:1")
    caplog.set_level(logging.INFO, "test.link")

    state.up(0)
    state.up(0)
    state.down(ConnectionError("gone"))
    state.down(ConnectionError("still gone"))
    state.up(3)

    events = [record.getMessage().split()[0] for record in caplog.records]
    assert events == [
        "event=backbone_connected",
        "event=backbone_disconnected",
        "event=backbone_reconnected",
    ]
    assert "pw" not in caplog.text
    assert "topics=3" in caplog.text


def test_deliver_hands_over_wanted_topics_only() -> None:
    received: list[BackboneMessage] = []
    wanted = BackboneMessage(NEWS, b"frame", "1.2", "node", 4009)
    gone = BackboneMessage(Topic("1", "gone"), b"frame")

    deliver(encode_message(wanted), {NEWS}, received.append, "test")
    deliver(encode_message(gone), {NEWS}, received.append, "test")
    deliver(encode_message(wanted, PREVIOUS_VERSION), {NEWS}, received.append, "test")

    assert received == [wanted, wanted]


def test_deliver_survives_a_corrupt_payload_and_a_failing_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(message: BackboneMessage) -> None:
        raise RuntimeError("node bug")

    deliver(b"\x09garbage", {NEWS}, handler, "test")
    deliver(encode_message(BackboneMessage(NEWS, b"f")), {NEWS}, handler, "test")

    assert "event=backbone_bad_message" in caplog.text
    assert "event=backbone_deliver_failed backend=test topic=1:news" in caplog.text


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as wait_for can in Python 3.11
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    await cancel_and_wait(task, patience=0.01)

    assert task.cancelled()
