"""Token buckets: how often something may happen, with the time passed in.

A bucket holds at most `burst` tokens and gains `rate` tokens a second; each action takes one.
So a client may do `burst` things at once, then `rate` a second on average: a page that
subscribes to all its channels when it loads is not throttled, a loop that never stops is.

Rules:
1. No clock is read: every call gets `now` (seconds, any origin, the same for every call).
2. Time going backwards (a wall clock stepped back) adds nothing and takes nothing away.
3. O(1) and allocation-free: it runs for every frame a client sends (`take_up_to` charges the
   frames of one read at once).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; starts full."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> bool:
        """Take one token at `now`; False (and nothing taken) when there is none."""
        elapsed = now - self.updated
        if elapsed > 0:  # the refill, written out: this runs for every text message
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def take_up_to(self, count: int, now: float) -> int:
        """Take up to `count` tokens at `now`, as `count` calls of `take` would; how many."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.updated = now
        taken = min(count, int(self.tokens))
        self.tokens -= taken
        return taken
