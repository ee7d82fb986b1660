"""Token buckets: a burst at once, then the rate; time is passed in (protocol/rates.py)."""

from __future__ import annotations

from ressonance.protocol.rates import TokenBucket


def takes(bucket: TokenBucket, count: int, now: float) -> int:
    return sum(bucket.take(now) for _ in range(count))


def test_a_full_bucket_gives_its_burst_at_once_and_no_more() -> None:
    bucket = TokenBucket.full(rate=10, burst=25, now=0.0)

    assert takes(bucket, 30, 0.0) == 25
    assert not bucket.take(0.0)


def test_tokens_come_back_at_the_rate_up_to_the_burst() -> None:
    bucket = TokenBucket.full(rate=10, burst=25, now=0.0)
    takes(bucket, 25, 0.0)

    assert takes(bucket, 100, 0.5) == 5  # half a second: 5 tokens
    assert takes(bucket, 100, 100.0) == 25  # a long pause refills to the burst, not beyond


def test_a_refused_take_spends_nothing() -> None:
    bucket = TokenBucket.full(rate=1, burst=1, now=0.0)
    assert bucket.take(0.0)

    assert not bucket.take(0.5)
    assert not bucket.take(0.9)
    assert bucket.take(1.0)


def test_time_going_backwards_neither_adds_nor_removes_tokens() -> None:
    bucket = TokenBucket.full(rate=10, burst=2, now=100.0)
    assert takes(bucket, 2, 100.0) == 2

    assert not bucket.take(50.0)  # the wall clock stepped back: no refill
    assert bucket.updated == 100.0
    assert bucket.take(100.2)


def test_take_up_to_takes_what_there_is_as_that_many_takes_would() -> None:
    bucket = TokenBucket.full(rate=4, burst=10, now=0.0)

    assert bucket.take_up_to(6, 0.0) == 6
    assert bucket.take_up_to(6, 0.0) == 4  # only four left
    assert bucket.take_up_to(6, 0.0) == 0
    assert bucket.take_up_to(6, 0.625) == 2  # 2.5 tokens back: whole ones only
    assert bucket.take(0.75)  # the half token left and the half since make one


def test_take_up_to_ignores_time_going_backwards() -> None:
    bucket = TokenBucket.full(rate=10, burst=2, now=100.0)
    assert bucket.take_up_to(5, 100.0) == 2

    assert bucket.take_up_to(5, 50.0) == 0
    assert bucket.updated == 100.0
