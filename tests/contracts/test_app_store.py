"""AppRegistry contract (apps/base.py): where apps are created, changed and deleted.

Every writable registry (memory, SQLite, PostgreSQL) keeps the same promises; the ones that
several processes open (SQLite, PostgreSQL) also share their writes and migrate once. The
static file store is read-only: its part of the contract is at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from ressonance.apps import open_registry
from ressonance.apps.base import (
    AppExistsError,
    AppNotFoundError,
    AppRecord,
    AppRegistry,
    ReadOnlyRegistryError,
)
from ressonance.apps.file import FileAppRegistry
from ressonance.apps.migrations import LATEST
from ressonance.protocol.errors import ConfigError
from tests.contracts.conftest import OpenRegistry, apps_toml, fresh_postgres_schema

SHOP = AppRecord(id="100001", key="shop-key", secret="shop-secret", name="shop")
BLOG = AppRecord(
    id="100002",
    key="blog-key",
    secret="blog-secret",
    name="blog",
    enabled=False,
    plan="free",
    settings={
        "max_connections": -1,
        "cache_ttl": 60,
        "enable_client_messages": True,
        "allowed_origins": ["https://blog.example.com", "*.example.org"],
        "slow_client_policy": "drop_oldest",
        "webhooks": [
            {
                "url": "https://blog.example.com/pusher",
                "event_types": ["channel_occupied", "member_removed"],
                "filter": {"channel_name_starts_with": "presence-"},
                "headers": {"Authorization": "Bearer t"},
            }
        ],
    },
)


def without_times(record: AppRecord | None) -> AppRecord | None:
    if record is None:
        return None
    return dataclasses.replace(record, created_at=0.0, updated_at=0.0)


# --- create, read, replace, delete ----------------------------------------------------------


async def test_created_apps_are_read_back_with_every_field(registry: AppRegistry) -> None:
    await registry.create(BLOG)
    await registry.create(SHOP)

    assert without_times(await registry.record("100002")) == BLOG
    assert [without_times(r) for r in await registry.records()] == [SHOP, BLOG]  # by id
    assert await registry.record("999") is None


async def test_settings_round_trip_as_json_types(registry: AppRegistry) -> None:
    await registry.create(BLOG)

    record = await registry.record(BLOG.id)

    assert record is not None
    settings = dict(record.settings)
    assert settings == dict(BLOG.settings)
    assert [type(settings[k]) for k in sorted(settings)] == [list, int, bool, int, str, list]
    assert record.enabled is False


async def test_the_registry_stamps_creation_and_updates(registry: AppRegistry) -> None:
    await registry.create(SHOP)
    created = await registry.record(SHOP.id)
    assert created is not None
    assert created.created_at > 0
    assert created.updated_at >= created.created_at

    await registry.replace(dataclasses.replace(SHOP, name="renamed", created_at=1.0))
    replaced = await registry.record(SHOP.id)

    assert replaced is not None
    assert replaced.name == "renamed"
    assert replaced.created_at == created.created_at  # kept
    assert replaced.updated_at >= created.updated_at


async def test_replace_changes_everything_but_the_id(registry: AppRegistry) -> None:
    await registry.create(SHOP)
    changed = dataclasses.replace(
        BLOG, id=SHOP.id, key="new-key", secret="new-secret", settings={"cache_ttl": 5}
    )

    await registry.replace(changed)

    assert without_times(await registry.record(SHOP.id)) == changed
    assert len(await registry.records()) == 1


async def test_delete_removes_the_app_once(registry: AppRegistry) -> None:
    await registry.create(SHOP)
    await registry.create(BLOG)

    assert await registry.delete(SHOP.id) is True
    assert await registry.delete(SHOP.id) is False
    assert await registry.record(SHOP.id) is None
    assert [r.id for r in await registry.records()] == [BLOG.id]


@pytest.mark.parametrize(
    "clash",
    [
        dataclasses.replace(BLOG, id=SHOP.id),  # the id is taken
        dataclasses.replace(BLOG, key=SHOP.key),  # the key is taken
    ],
    ids=["id", "key"],
)
async def test_duplicate_ids_and_keys_are_refused(registry: AppRegistry, clash: AppRecord) -> None:
    await registry.create(SHOP)

    with pytest.raises(AppExistsError):
        await registry.create(clash)
    assert [without_times(r) for r in await registry.records()] == [SHOP]


async def test_replace_refuses_another_apps_key(registry: AppRegistry) -> None:
    await registry.create(SHOP)
    await registry.create(BLOG)

    with pytest.raises(AppExistsError):
        await registry.replace(dataclasses.replace(BLOG, key=SHOP.key))
    blog = await registry.record(BLOG.id)
    assert blog is not None
    assert blog.key == BLOG.key


async def test_replacing_a_missing_app_is_not_found(registry: AppRegistry) -> None:
    with pytest.raises(AppNotFoundError):
        await registry.replace(SHOP)
    assert await registry.records() == []


async def test_the_revision_grows_with_every_write_and_only_then(registry: AppRegistry) -> None:
    seen = [await registry.revision()]

    await registry.create(SHOP)
    seen.append(await registry.revision())
    await registry.replace(dataclasses.replace(SHOP, enabled=False))
    seen.append(await registry.revision())
    await registry.delete(SHOP.id)
    seen.append(await registry.revision())

    assert seen == sorted(set(seen))  # strictly growing
    # refused writes and deleting nothing change nothing
    with pytest.raises(AppNotFoundError):
        await registry.replace(SHOP)
    assert await registry.delete(SHOP.id) is False
    await registry.create(BLOG)
    before = await registry.revision()
    with pytest.raises(AppExistsError):
        await registry.create(BLOG)
    assert await registry.revision() == before


# --- shared by several processes (SQLite, PostgreSQL) ---------------------------------------


async def test_two_registries_on_one_database_see_each_others_writes(
    open_shared: OpenRegistry,
) -> None:
    first, second = await open_shared(), await open_shared()
    start = await second.revision()

    await first.create(SHOP)

    assert await second.revision() > start
    assert without_times(await second.record(SHOP.id)) == SHOP
    await second.replace(dataclasses.replace(SHOP, enabled=False))
    record = await first.record(SHOP.id)
    assert record is not None
    assert record.enabled is False
    with pytest.raises(AppExistsError):
        await second.create(dataclasses.replace(BLOG, key=SHOP.key))


async def test_opening_again_keeps_the_apps_and_migrates_nothing(
    open_shared: OpenRegistry,
) -> None:
    first = await open_shared()
    await first.create(SHOP)
    revision = await first.revision()
    await first.close()

    again = await open_shared()

    assert [without_times(r) for r in await again.records()] == [SHOP]
    assert await again.revision() == revision


async def test_nodes_starting_together_migrate_once(open_shared: OpenRegistry) -> None:
    registries = await asyncio.gather(*(open_shared() for _ in range(4)))

    await registries[0].create(SHOP)

    for each in registries:
        assert [r.id for r in await each.records()] == [SHOP.id]


async def test_a_database_migrated_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'apps.db'}"
    await (await open_registry(url)).close()
    with sqlite3.connect(tmp_path / "apps.db") as db:
        db.execute("INSERT INTO ressonance_schema (version) VALUES (?)", (LATEST + 1,))

    with pytest.raises(ConfigError, match=f"schema is at version {LATEST + 1}.*upgrade"):
        await open_registry(url)


async def test_postgres_refuses_a_newer_schema_too(postgres_url: str) -> None:
    url = await fresh_postgres_schema(postgres_url)
    await (await open_registry(url)).close()
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("INSERT INTO ressonance_schema (version) VALUES ($1)", LATEST + 1)
    finally:
        await connection.close()

    with pytest.raises(ConfigError, match="newer than this Ressonance"):
        await open_registry(url)


# --- the static file store (read-only) ------------------------------------------------------


def write_apps(path: Path, *records: AppRecord) -> None:
    """Write the file, and make its change visible even within one mtime tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(apps_toml(records))
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


async def test_the_file_store_reads_its_apps_tables(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    write_apps(path, SHOP, BLOG)

    registry = FileAppRegistry(path)

    assert await registry.records() == [SHOP, BLOG]
    assert await registry.record(BLOG.id) == BLOG


async def test_the_file_store_is_read_only_and_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    write_apps(path, SHOP)
    registry = FileAppRegistry(path)

    for write in (registry.create(BLOG), registry.replace(SHOP), registry.delete(SHOP.id)):
        with pytest.raises(ReadOnlyRegistryError, match=f"read-only: edit {path}"):
            await write
    assert await registry.records() == [SHOP]


async def test_editing_the_file_is_a_new_revision(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    write_apps(path, SHOP)
    registry = FileAppRegistry(path)
    first = await registry.revision()
    assert await registry.revision() == first  # nothing changed

    write_apps(path, SHOP, dataclasses.replace(BLOG, enabled=True))

    assert await registry.revision() > first
    assert [r.id for r in await registry.records()] == [SHOP.id, BLOG.id]


async def test_a_broken_edit_keeps_the_last_good_apps(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    write_apps(path, SHOP)
    registry = FileAppRegistry(path)
    revision = await registry.revision()

    path.write_text('[[apps]]\nid = "1"\nkey = "half-saved')
    os.utime(path, ns=(10**18, 10**18))

    assert await registry.revision() == revision
    assert await registry.records() == [SHOP]
    write_apps(path, BLOG)
    assert await registry.revision() > revision
    assert await registry.records() == [BLOG]


async def test_the_file_store_adds_the_environments_app(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    write_apps(path, SHOP)

    registry = FileAppRegistry(path, fixed=[BLOG])

    assert await registry.records() == [SHOP, BLOG]
    assert await FileAppRegistry(None, fixed=[BLOG]).records() == [BLOG]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[apps]]\nid = "1"\nkey = "k"', r"apps\[0\]\.secret: required"),
        ('[[apps]]\nid = "x"\nkey = "k"\nsecret = "s"', r"apps\[0\]\.id: must be digits only"),
        (
            '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\ncache_ttl = "soon"',
            r"apps\[0\]\.cache_ttl: must be a positive integer",
        ),
        (
            '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n[[apps]]\nid = "2"\nkey = "k"\n'
            'secret = "t"',
            "two apps share the key 'k'",
        ),
        ("apps = 3", r"expected an array of tables"),
        ("[[apps", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_at_open_with_the_problem_named(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "apps.toml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=message):
        FileAppRegistry(path)
