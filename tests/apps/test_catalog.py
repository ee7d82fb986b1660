"""AppCatalog: resolved apps from a registry, answered from memory, refreshed on a new revision."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from ressonance.apps.base import AppRecord
from ressonance.apps.catalog import AppCatalog, AppsById
from ressonance.apps.memory import MemoryAppRegistry
from ressonance.apps.plans import BUILTIN_PLANS, Plan

SHOP = AppRecord(id="1", key="shop-key", secret="s1", name="shop")
PRO = AppRecord(id="2", key="pro-key", secret="s2", plan="pro", settings={"max_connections": 7})
PLANS = {**BUILTIN_PLANS, "pro": Plan("pro", {"max_connections": 5000, "watchlist": True})}


async def loaded(registry: MemoryAppRegistry, **options: object) -> AppCatalog:
    catalog = AppCatalog(registry, PLANS, **options)  # type: ignore[arg-type]
    await catalog.refresh()
    return catalog


async def test_apps_are_resolved_with_their_plan_and_overrides() -> None:
    catalog = await loaded(MemoryAppRegistry([SHOP, PRO]))

    pro = await catalog.find_by_key("pro-key")

    assert pro is not None
    assert (pro.id, pro.plan, pro.max_connections, pro.watchlist) == ("2", "pro", 7, True)
    assert await catalog.find_by_id("1") == await catalog.find_by_key("shop-key")
    assert [app.id for app in await catalog.all()] == ["1", "2"]


async def test_lookups_answer_from_the_snapshot_until_a_refresh() -> None:
    registry = MemoryAppRegistry([SHOP])
    catalog = await loaded(registry)

    await registry.create(PRO)
    assert await catalog.find_by_id("2") is None  # not read yet: no database on the hot path

    assert await catalog.refresh() is True
    assert await catalog.find_by_id("2") is not None
    assert await catalog.refresh() is False  # same revision: nothing read


async def test_a_record_with_an_unknown_plan_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gold = AppRecord(id="3", key="gold-key", secret="s3", plan="gold")
    bad = AppRecord(id="4", key="bad-key", secret="s4", settings={"cache_ttl": "soon"})

    with caplog.at_level(logging.ERROR, logger="ressonance.apps.catalog"):
        catalog = await loaded(MemoryAppRegistry([SHOP, gold, bad]))

    assert [app.id for app in await catalog.all()] == ["1"]
    assert await catalog.find_by_key("gold-key") is None
    skipped = [r.getMessage() for r in caplog.records]
    assert any("app_id=3" in line and "no plan named 'gold'" in line for line in skipped)
    assert any("app_id=4" in line and "cache_ttl" in line for line in skipped)


async def test_the_listener_hears_what_changed_before_and_after() -> None:
    registry = MemoryAppRegistry([SHOP, PRO])
    heard: list[tuple[AppsById, AppsById]] = []
    catalog = await loaded(registry, on_change=lambda old, new: heard.append((old, new)))
    assert heard == []  # the first load is not a change

    await registry.replace(dataclasses.replace(SHOP, enabled=False))
    await registry.delete(PRO.id)
    await catalog.refresh()

    [(before, after)] = heard
    assert sorted(before) == ["1", "2"]
    assert list(after) == ["1"]
    assert after["1"].enabled is False


async def test_a_write_that_changes_no_resolved_app_is_not_a_change() -> None:
    registry = MemoryAppRegistry([SHOP])
    heard: list[object] = []
    catalog = await loaded(registry, on_change=lambda old, new: heard.append(new))

    await registry.replace(SHOP)  # same values: a new revision, the same app

    assert await catalog.refresh() is False
    assert heard == []


class FlakyRegistry(MemoryAppRegistry):
    def __init__(self, *records: AppRecord) -> None:
        super().__init__(records)
        self.down = False

    async def revision(self) -> int:
        if self.down:
            raise ConnectionError("database unreachable")
        return await super().revision()


async def test_an_unreachable_registry_keeps_the_last_apps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = FlakyRegistry(SHOP)
    catalog = await loaded(registry)
    registry.down = True
    await registry.create(PRO)

    with caplog.at_level(logging.INFO, logger="ressonance.apps.catalog"):
        task = asyncio.create_task(catalog.run(0.01))
        for _ in range(500):
            await asyncio.sleep(0.01)
            if any("apps_refresh_failed" in r.getMessage() for r in caplog.records):
                break
        assert await catalog.find_by_id("1") is not None
        assert await catalog.find_by_id("2") is None
        registry.down = False
        for _ in range(500):
            await asyncio.sleep(0.01)
            if await catalog.find_by_id("2") is not None:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert await catalog.find_by_id("2") is not None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("apps_refresh_failed" in m for m in messages) == 1  # once per outage, not per poll
    assert any("apps_refresh_recovered" in m for m in messages)
