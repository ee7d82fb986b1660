"""When to send pusher_internal:subscription_count (reference §2.2).

Every subscribe and unsubscribe announces the new count, except on channels with more than
100 subscribers, where at most one announcement per 5 s goes out (the latest count, sent by
the node's timer). Without that, N clients joining one channel would cost N² frames.
"""

from __future__ import annotations

from typing import Final

from ressonance.backbone.base import Topic

THROTTLE_ABOVE: Final = 100
THROTTLE_SECONDS: Final = 5.0


class CountThrottle:
    """Tracks, per topic, when a count was last sent and whether a newer one is owed."""

    __slots__ = ("_last_sent", "_owed")

    def __init__(self) -> None:
        self._last_sent: dict[Topic, float] = {}
        self._owed: set[Topic] = set()

    def send_now(self, topic: Topic, count: int, now: float) -> bool:
        """Whether to announce `count` now; if not, it is owed and `due` returns it later."""
        if count == 0:
            self._last_sent.pop(topic, None)
            self._owed.discard(topic)
            return False
        if (
            count > THROTTLE_ABOVE
            and now - self._last_sent.get(topic, -THROTTLE_SECONDS) < THROTTLE_SECONDS
        ):
            self._owed.add(topic)
            return False
        self._last_sent[topic] = now
        self._owed.discard(topic)
        return True

    def due(self, now: float) -> list[Topic]:
        """Topics whose owed announcement may go out now (marked as sent)."""
        ready = [t for t in self._owed if now - self._last_sent.get(t, 0.0) >= THROTTLE_SECONDS]
        for topic in ready:
            self._owed.discard(topic)
            self._last_sent[topic] = now
        return ready
