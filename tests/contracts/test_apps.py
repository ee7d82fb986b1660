"""AppStore contract (apps/base.py): apps found by id and by key, exactly as stored."""

from __future__ import annotations

import pytest

from ressonance.apps.memory import MemoryAppStore
from ressonance.protocol.app import App
from ressonance.protocol.webhooks import parse_endpoints
from tests.contracts.conftest import MakeAppStore

FIRST = App(id="1", key="key-1", secret="secret-1", name="first")
SECOND = App(
    id="2",
    key="key-2",
    secret="secret-2",
    name="second",
    enabled=False,
    enable_client_messages=True,
    enable_user_authentication=True,
    user_authentication_timeout=10,
    subscription_count=True,
    watchlist=True,
    allowed_origins=("https://example.com", "*.example.org"),
    activity_timeout=30,
    cache_ttl=60,
    max_connections=1000,
    max_presence_members_per_channel=50,
    max_presence_member_size_in_kb=2,
    max_channel_name_length=164,
    max_event_channels_at_once=10,
    max_event_name_length=100,
    max_event_payload_in_kb=20,
    max_event_batch_size=5,
    max_client_events_per_sec=5,
    max_watchlist_size=20,
    webhooks=parse_endpoints(
        [
            {
                "url": "https://example.com/hooks",
                "event_types": ["client_event", "cache_miss"],
                "filter": {"channel_name_ends_with": "-x"},
                "headers": {"X-Token": "t"},
            }
        ]
    ),
)


async def test_apps_are_found_by_id_and_key_with_every_setting(
    make_app_store: MakeAppStore,
) -> None:
    store = await make_app_store([FIRST, SECOND])

    assert await store.find_by_id("2") == SECOND
    assert await store.find_by_key("key-2") == SECOND
    assert await store.find_by_id("1") == FIRST
    assert await store.find_by_key("key-1") == FIRST


async def test_unknown_ids_and_keys_are_none(make_app_store: MakeAppStore) -> None:
    store = await make_app_store([FIRST])

    assert await store.find_by_id("2") is None
    assert await store.find_by_key("key-2") is None
    assert await store.find_by_id("key-1") is None  # a key is not an id
    assert await store.find_by_key("1") is None


async def test_all_lists_every_app_in_a_stable_order(make_app_store: MakeAppStore) -> None:
    store = await make_app_store([FIRST, SECOND])

    listed = await store.all()

    assert sorted(listed, key=lambda app: app.id) == [FIRST, SECOND]
    assert await store.all() == listed


async def test_an_empty_store_has_no_apps(make_app_store: MakeAppStore) -> None:
    store = await make_app_store([])

    assert await store.all() == []
    assert await store.find_by_id("1") is None


@pytest.mark.parametrize(
    "clash",
    [
        App(id="1", key="other-key", secret="s"),
        App(id="3", key="key-1", secret="s"),
    ],
)
def test_the_memory_store_refuses_duplicate_ids_and_keys(clash: App) -> None:
    with pytest.raises(ValueError, match="unique"):
        MemoryAppStore([FIRST, clash])
