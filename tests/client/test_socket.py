"""PusherSocket's reconnect rules (client/socket.py): pusher-js's close-code actions and
full-jitter backoff, table-driven, no network."""

from __future__ import annotations

import random

import pytest

from ressonance.client.socket import BACKOFF_BASE_SECONDS, backoff_delay, close_action


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (None, "backoff"),  # the connection dropped without a close frame
        (1000, "backoff"),
        (1006, "backoff"),
        (4000, "refused"),  # pusher-js: tls_only; this client has nothing to switch to
        (4001, "refused"),  # app does not exist
        (4009, "refused"),  # unauthorized / terminated by the app
        (4099, "refused"),
        (4100, "backoff"),  # over capacity: pusher-js retries after 1 s
        (4199, "backoff"),
        (4200, "retry"),  # generic reconnect (a draining node): at once
        (4201, "retry"),  # pong not received
        (4299, "retry"),
        (4300, "refused"),
        (4301, "refused"),
    ],
)
def test_close_codes_are_acted_on_as_pusher_js_does(code: int | None, action: str) -> None:
    assert close_action(code) == action


def test_backoff_is_full_jitter_doubling_up_to_the_cap() -> None:
    random.seed(12)
    draws = {attempt: [backoff_delay(attempt, 30.0) for _ in range(200)] for attempt in range(8)}

    for attempt, delays in draws.items():
        bound = min(30.0, BACKOFF_BASE_SECONDS * 2**attempt)
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound * 0.8  # the whole range is used: full jitter
        assert min(delays) < bound * 0.2
