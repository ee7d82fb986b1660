"""When subscription_count goes out: on every change, but at most once per 5 s above 100 (§2.2)."""

from __future__ import annotations

from ressonance.server.counts import THROTTLE_ABOVE, THROTTLE_SECONDS, CountThrottle

T0 = 1000.0


def test_counts_up_to_the_threshold_always_go_out_at_once() -> None:
    throttle = CountThrottle()

    assert all(throttle.send_now("1:news", n, T0) for n in range(1, THROTTLE_ABOVE + 1))
    assert throttle.send_now("1:news", THROTTLE_ABOVE - 1, T0)
    assert throttle.due(T0 + 60) == []


def test_a_count_above_the_threshold_soon_after_the_last_is_owed_until_5_s_passed() -> None:
    throttle = CountThrottle()
    throttle.send_now("1:news", THROTTLE_ABOVE, T0)

    assert not throttle.send_now("1:news", THROTTLE_ABOVE + 1, T0 + 1)
    assert not throttle.send_now("1:news", THROTTLE_ABOVE + 2, T0 + 2)
    assert throttle.due(T0 + THROTTLE_SECONDS - 0.1) == []
    assert throttle.due(T0 + THROTTLE_SECONDS) == ["1:news"]
    assert throttle.due(T0 + THROTTLE_SECONDS * 3) == []  # paid once


def test_a_count_above_the_threshold_goes_out_when_the_last_is_5_s_old() -> None:
    throttle = CountThrottle()
    throttle.send_now("1:news", THROTTLE_ABOVE + 1, T0)

    assert throttle.send_now("1:news", THROTTLE_ABOVE + 2, T0 + THROTTLE_SECONDS)
    assert not throttle.send_now("1:news", THROTTLE_ABOVE + 3, T0 + THROTTLE_SECONDS + 1)


def test_the_first_count_above_the_threshold_goes_out_at_once() -> None:
    throttle = CountThrottle()

    assert throttle.send_now("1:news", THROTTLE_ABOVE + 50, T0)


def test_a_sent_count_pays_what_was_owed() -> None:
    throttle = CountThrottle()
    throttle.send_now("1:news", THROTTLE_ABOVE, T0)
    throttle.send_now("1:news", THROTTLE_ABOVE + 1, T0 + 1)

    assert throttle.send_now("1:news", THROTTLE_ABOVE, T0 + 2)  # back under: at once
    assert throttle.due(T0 + 60) == []


def test_an_empty_channel_announces_nothing_and_owes_nothing() -> None:
    throttle = CountThrottle()
    throttle.send_now("1:news", THROTTLE_ABOVE + 1, T0)
    throttle.send_now("1:news", THROTTLE_ABOVE + 2, T0 + 1)

    assert not throttle.send_now("1:news", 0, T0 + 2)
    assert throttle.due(T0 + 60) == []
    assert throttle.send_now("1:news", THROTTLE_ABOVE + 1, T0 + 3)  # a fresh start


def test_topics_are_throttled_separately() -> None:
    throttle = CountThrottle()
    throttle.send_now("1:a", THROTTLE_ABOVE + 1, T0)
    throttle.send_now("1:b", THROTTLE_ABOVE + 1, T0)

    assert not throttle.send_now("1:a", THROTTLE_ABOVE + 2, T0 + 1)
    assert sorted(throttle.due(T0 + THROTTLE_SECONDS)) == ["1:a"]
