"""PresenceStore contract (presence/base.py): occupancy, rosters and signed-in users.

member_added and member_removed must fire once per user, never per tab (§2.2), and
watchlist online/offline once per user (§2.5): the store's first/last answers drive them.
"""

from __future__ import annotations

import asyncio

import pytest

from ressonance.state.base import PresenceFullError, PresenceStore


async def test_subscription_counts_follow_joins_and_leaves(presence: PresenceStore) -> None:
    assert await presence.subscription_count("1", "news") == 0
    assert await presence.join("1", "news", "1.1") == 1
    assert await presence.join("1", "news", "1.2") == 2
    assert await presence.subscription_count("1", "news") == 2
    assert await presence.leave("1", "news", "1.1") == 1
    assert await presence.leave("1", "news", "1.2") == 0
    assert await presence.subscription_count("1", "news") == 0


async def test_joining_twice_counts_once(presence: PresenceStore) -> None:
    await presence.join("1", "news", "1.1")

    assert await presence.join("1", "news", "1.1") == 1


async def test_leaving_what_was_never_joined_changes_nothing(presence: PresenceStore) -> None:
    await presence.join("1", "news", "1.1")

    assert await presence.leave("1", "news", "9.9") == 1
    assert await presence.leave("1", "sports", "1.1") == 0
    assert await presence.subscription_count("1", "news") == 1


async def test_channels_lists_occupied_channels_with_counts(presence: PresenceStore) -> None:
    await presence.join("1", "news", "1.1")
    await presence.join("1", "news", "1.2")
    await presence.join("1", "presence-room", "1.1")
    await presence.join("1", "gone", "1.3")
    await presence.leave("1", "gone", "1.3")

    assert await presence.channels("1") == {"news": 2, "presence-room": 1}


async def test_channels_filters_by_prefix(presence: PresenceStore) -> None:
    for channel in ("presence-a", "presence-b", "private-a", "news-presence-"):
        await presence.join("1", channel, "1.1")

    assert await presence.channels("1", "presence-") == {"presence-a": 1, "presence-b": 1}
    assert await presence.channels("1", "nothing-") == {}


async def test_apps_are_kept_apart(presence: PresenceStore) -> None:
    await presence.join("1", "news", "1.1")
    await presence.add_member("1", "presence-room", "1.1", "alice", None)
    await presence.add_user_connection("1", "alice", "1.1")

    assert await presence.subscription_count("2", "news") == 0
    assert await presence.channels("2") == {}
    assert await presence.members("2", "presence-room") == {}
    assert await presence.user_count("2", "presence-room") == 0
    assert await presence.online("2", ("alice",)) == set()
    assert await presence.add_member("2", "presence-room", "2.1", "alice", None) is True


async def test_a_users_first_member_connection_is_new_and_the_others_are_not(
    presence: PresenceStore,
) -> None:
    assert await presence.add_member("1", "presence-room", "1.1", "alice", {"n": 1}) is True
    assert await presence.add_member("1", "presence-room", "1.2", "alice", {"n": 1}) is False
    assert await presence.add_member("1", "presence-room", "1.3", "bob", None) is True
    assert await presence.add_member("1", "presence-other", "1.1", "alice", None) is True


async def test_a_user_is_removed_with_its_last_member_connection_only(
    presence: PresenceStore,
) -> None:
    await presence.add_member("1", "presence-room", "1.1", "alice", None)
    await presence.add_member("1", "presence-room", "1.2", "alice", None)

    assert await presence.remove_member("1", "presence-room", "1.1") is None
    assert await presence.members("1", "presence-room") == {"alice": None}
    assert await presence.remove_member("1", "presence-room", "1.2") == "alice"
    assert await presence.members("1", "presence-room") == {}


async def test_removing_an_unknown_member_connection_returns_none(
    presence: PresenceStore,
) -> None:
    await presence.add_member("1", "presence-room", "1.1", "alice", None)

    assert await presence.remove_member("1", "presence-room", "9.9") is None
    assert await presence.remove_member("1", "presence-empty", "1.1") is None
    assert await presence.remove_member("1", "presence-room", "1.1") == "alice"
    assert await presence.remove_member("1", "presence-room", "1.1") is None


async def test_members_keep_the_info_of_their_first_connection(presence: PresenceStore) -> None:
    await presence.add_member("1", "presence-room", "1.1", "carol", {"name": "C"})
    await presence.add_member("1", "presence-room", "1.2", "alice", None)
    await presence.add_member("1", "presence-room", "1.3", "bob", {"name": "B", "tags": [1, 2]})
    await presence.add_member("1", "presence-room", "1.4", "carol", {"name": "ignored"})

    members = await presence.members("1", "presence-room")

    assert members == {"carol": {"name": "C"}, "alice": None, "bob": {"name": "B", "tags": [1, 2]}}


async def test_user_count_counts_users_not_connections(presence: PresenceStore) -> None:
    assert await presence.user_count("1", "presence-room") == 0
    await presence.add_member("1", "presence-room", "1.1", "alice", None)
    await presence.add_member("1", "presence-room", "1.2", "alice", None)
    await presence.add_member("1", "presence-room", "1.3", "bob", None)

    assert await presence.user_count("1", "presence-room") == 2
    await presence.remove_member("1", "presence-room", "1.3")
    assert await presence.user_count("1", "presence-room") == 1


async def test_a_user_leaving_and_returning_is_new_again(presence: PresenceStore) -> None:
    await presence.add_member("1", "presence-room", "1.1", "alice", None)
    await presence.remove_member("1", "presence-room", "1.1")

    assert await presence.add_member("1", "presence-room", "1.2", "alice", None) is True


async def test_signed_in_connections_report_first_and_last(presence: PresenceStore) -> None:
    assert await presence.add_user_connection("1", "alice", "1.1") is True
    assert await presence.add_user_connection("1", "alice", "1.2") is False
    assert await presence.remove_user_connection("1", "alice", "1.1") is False
    assert await presence.remove_user_connection("1", "alice", "1.2") is True
    assert await presence.add_user_connection("1", "alice", "1.3") is True


async def test_indexing_the_same_connection_again_is_not_a_first(presence: PresenceStore) -> None:
    await presence.add_user_connection("1", "alice", "1.1")

    assert await presence.add_user_connection("1", "alice", "1.1") is False
    assert await presence.remove_user_connection("1", "alice", "1.1") is True


async def test_dropping_an_unknown_connection_is_not_a_last(presence: PresenceStore) -> None:
    await presence.add_user_connection("1", "alice", "1.1")

    assert await presence.remove_user_connection("1", "alice", "9.9") is False
    assert await presence.remove_user_connection("1", "bob", "1.1") is False
    assert await presence.online("1", ("alice",)) == {"alice"}


async def test_online_answers_which_users_are_signed_in(presence: PresenceStore) -> None:
    await presence.add_user_connection("1", "alice", "1.1")
    await presence.add_user_connection("1", "bob", "1.2")
    await presence.remove_user_connection("1", "bob", "1.2")

    assert await presence.online("1", ("alice", "bob", "carol")) == {"alice"}
    assert await presence.online("1", ()) == set()


async def test_a_node_that_heartbeats_is_never_reaped(presence: PresenceStore) -> None:
    await presence.join("1", "news", "1.1")
    await presence.add_member("1", "presence-room", "1.1", "alice", None)
    await presence.add_user_connection("1", "alice", "1.1")

    await presence.heartbeat()

    assert await presence.reap_dead_nodes() == []
    assert await presence.subscription_count("1", "news") == 1
    assert await presence.members("1", "presence-room") == {"alice": None}
    assert await presence.online("1", ("alice",)) == {"alice"}


async def test_a_full_channel_refuses_new_users_but_not_more_tabs(presence: PresenceStore) -> None:
    assert await presence.add_member("1", "presence-room", "1.1", "alice", None, 2) is True
    assert await presence.add_member("1", "presence-room", "1.2", "bob", None, 2) is True

    with pytest.raises(PresenceFullError):
        await presence.add_member("1", "presence-room", "1.3", "carol", None, 2)
    assert await presence.add_member("1", "presence-room", "1.4", "alice", None, 2) is False

    assert await presence.members("1", "presence-room") == {"alice": None, "bob": None}
    assert await presence.remove_member("1", "presence-room", "1.3") is None  # nothing recorded
    await presence.remove_member("1", "presence-room", "1.2")
    assert await presence.add_member("1", "presence-room", "1.3", "carol", None, 2) is True


async def test_concurrent_joins_never_pass_the_limit(presence: PresenceStore) -> None:
    async def join(n: int) -> bool:
        try:
            await presence.add_member("1", "presence-race", f"1.{n}", f"u{n}", None, 5)
        except PresenceFullError:
            return False
        return True

    admitted = await asyncio.gather(*(join(n) for n in range(20)))

    assert sum(admitted) == 5
    assert await presence.user_count("1", "presence-race") == 5
