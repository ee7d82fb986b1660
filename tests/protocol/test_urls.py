"""Backend URLs shown without their passwords (protocol/urls.py)."""

from __future__ import annotations

import pytest

from ressonance.protocol.urls import redacted_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
        ("rediss://app:s3cret@redis.internal/1", "rediss://app:***@redis.internal/1"),
        ("nats://token@nats:4222", "nats://token@nats:4222"),
        ("postgresql://app:s3cret@db:5432/r", "postgresql://app:***@db:5432/r"),
        ("sqlite:///ressonance.db", "sqlite:///ressonance.db"),
        ("redis://u:pw@[::1]:6379/0", "redis://u:***@[::1]:6379/0"),
        ("redis://u:pw@Redis.Example:6379", "redis://u:***@Redis.Example:6379"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_a_limit_cuts_what_is_shown() -> None:
    assert redacted_url("postgresql://app:s3cret@db:5432/r", 20) == "postgresql://app:***"
    assert redacted_url("x" * 300, 120) == "x" * 120


def test_a_url_that_cannot_be_parsed_is_cut_short() -> None:
    broken = "redis://[::1" + "x" * 100

    assert redacted_url(broken) == broken[:60]
