"""An app's usage report: messages and peak connections per UTC day, and the total messages.

Built here once for both places that show it, so they cannot drift: the admin API answers
`GET /admin/v1/apps/{id}/usage` with `to_json()`, and `ressonance apps usage` prints the same
body with `--json` (a table of the same days without). Rules: days are UTC dates, oldest
first, ending on the day of `now`; at most `MAX_USAGE_DAYS`, what the shared usage store
keeps. Whether the app exists is the caller's question.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ressonance.state.base import DayUsage, UsageStore
from ressonance.state.redis_usage import RETENTION_DAYS

DEFAULT_USAGE_DAYS: Final = 7
MAX_USAGE_DAYS: Final = RETENTION_DAYS  # what the shared usage store keeps


def usage_days(now: float, count: int) -> list[str]:
    """The `count` UTC days up to and including the day of `now`, oldest first."""
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """One app's usage over consecutive days, oldest first."""

    app_id: str
    days: tuple[DayUsage, ...]

    @property
    def total_messages(self) -> int:
        return sum(day.messages for day in self.days)

    def to_json(self) -> dict[str, object]:
        """The body of the admin API's usage answer (and of `ressonance apps usage --json`)."""
        return {
            "app_id": self.app_id,
            "days": [
                {"day": d.day, "messages": d.messages, "peak_connections": d.peak_connections}
                for d in self.days
            ],
            "total_messages": self.total_messages,
        }


async def usage_report(store: UsageStore, app_id: str, *, now: float, days: int) -> UsageReport:
    """The usage of `app_id` over the `days` UTC days ending on the day of `now`."""
    usage = await store.usage(app_id, usage_days(now, days))
    return UsageReport(app_id, tuple(usage))
