"""The usage report (server/usage_report.py) the admin API and `ressonance apps usage` show."""

from __future__ import annotations

from ressonance.server.usage_report import UsageReport, usage_days, usage_report
from ressonance.state.base import DayUsage
from ressonance.state.memory import MemoryUsageStore
from tests.fakes import FakeClock


def test_usage_days_end_today_in_utc_oldest_first() -> None:
    assert usage_days(FakeClock().now, 3) == ["2023-11-12", "2023-11-13", "2023-11-14"]


async def test_a_report_has_every_day_asked_for_and_the_total() -> None:
    store = MemoryUsageStore()
    await store.add_messages("1", "2023-11-14", 40)
    await store.add_messages("1", "2023-11-12", 2)
    await store.record_connections("1", "2023-11-14", 9)
    await store.add_messages("2", "2023-11-14", 1000)  # another app

    report = await usage_report(store, "1", now=FakeClock().now, days=3)

    assert report == UsageReport(
        "1",
        (
            DayUsage("2023-11-12", 2, 0),
            DayUsage("2023-11-13", 0, 0),
            DayUsage("2023-11-14", 40, 9),
        ),
    )
    assert report.to_json() == {
        "app_id": "1",
        "days": [
            {"day": "2023-11-12", "messages": 2, "peak_connections": 0},
            {"day": "2023-11-13", "messages": 0, "peak_connections": 0},
            {"day": "2023-11-14", "messages": 40, "peak_connections": 9},
        ],
        "total_messages": 42,
    }
