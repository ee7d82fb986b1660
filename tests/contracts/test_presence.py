"""PresenceStore contract (state/base.py): occupancy, rosters and signed-in users.

member_added and member_removed must fire once per user, never per tab (§2.2), and
watchlist online/offline once per user (§2.5): the store's first/last answers drive them.
A presence subscribe is one store call (`join_presence`): one round trip on Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from redis.asyncio.connection import AbstractConnection

from ressonance.state import open_state
from ressonance.state.base import Joined, PresenceFullError, PresenceStore
from tests.contracts.conftest import SHARED_STATE, MakeState
from tests.fakes import FakeClock


async def added(
    presence: PresenceStore,
    app_id: str,
    channel: str,
    socket_id: str,
    user_id: str,
    user_info: object,
    max_users: int | None = None,
) -> bool:
    """A presence subscribe; True when the user is new to the channel."""
    joined = await presence.join_presence(app_id, channel, socket_id, user_id, user_info, max_users)
    return joined.new_member


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
    await added(presence, "1", "presence-room", "1.1", "alice", None)
    await presence.add_user_connection("1", "alice", "1.1")

    assert await presence.subscription_count("2", "news") == 0
    assert await presence.channels("2") == {}
    assert await presence.members("2", "presence-room") == {}
    assert await presence.user_count("2", "presence-room") == 0
    assert await presence.online("2", ("alice",)) == set()
    assert await added(presence, "2", "presence-room", "2.1", "alice", None) is True


async def test_a_users_first_member_connection_is_new_and_the_others_are_not(
    presence: PresenceStore,
) -> None:
    assert await added(presence, "1", "presence-room", "1.1", "alice", {"n": 1}) is True
    assert await added(presence, "1", "presence-room", "1.2", "alice", {"n": 1}) is False
    assert await added(presence, "1", "presence-room", "1.3", "bob", None) is True
    assert await added(presence, "1", "presence-other", "1.1", "alice", None) is True


async def test_a_user_is_removed_with_its_last_member_connection_only(
    presence: PresenceStore,
) -> None:
    await added(presence, "1", "presence-room", "1.1", "alice", None)
    await added(presence, "1", "presence-room", "1.2", "alice", None)

    assert await presence.remove_member("1", "presence-room", "1.1") is None
    assert await presence.members("1", "presence-room") == {"alice": None}
    assert await presence.remove_member("1", "presence-room", "1.2") == "alice"
    assert await presence.members("1", "presence-room") == {}


async def test_removing_an_unknown_member_connection_returns_none(
    presence: PresenceStore,
) -> None:
    await added(presence, "1", "presence-room", "1.1", "alice", None)

    assert await presence.remove_member("1", "presence-room", "9.9") is None
    assert await presence.remove_member("1", "presence-empty", "1.1") is None
    assert await presence.remove_member("1", "presence-room", "1.1") == "alice"
    assert await presence.remove_member("1", "presence-room", "1.1") is None


async def test_members_keep_the_info_of_their_first_connection(presence: PresenceStore) -> None:
    await added(presence, "1", "presence-room", "1.1", "carol", {"name": "C"})
    await added(presence, "1", "presence-room", "1.2", "alice", None)
    await added(presence, "1", "presence-room", "1.3", "bob", {"name": "B", "tags": [1, 2]})
    await added(presence, "1", "presence-room", "1.4", "carol", {"name": "ignored"})

    members = await presence.members("1", "presence-room")

    assert members == {"carol": {"name": "C"}, "alice": None, "bob": {"name": "B", "tags": [1, 2]}}


async def test_user_count_counts_users_not_connections(presence: PresenceStore) -> None:
    assert await presence.user_count("1", "presence-room") == 0
    await added(presence, "1", "presence-room", "1.1", "alice", None)
    await added(presence, "1", "presence-room", "1.2", "alice", None)
    await added(presence, "1", "presence-room", "1.3", "bob", None)

    assert await presence.user_count("1", "presence-room") == 2
    await presence.remove_member("1", "presence-room", "1.3")
    assert await presence.user_count("1", "presence-room") == 1


async def test_a_user_leaving_and_returning_is_new_again(presence: PresenceStore) -> None:
    await added(presence, "1", "presence-room", "1.1", "alice", None)
    await presence.remove_member("1", "presence-room", "1.1")

    assert await added(presence, "1", "presence-room", "1.2", "alice", None) is True


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


async def test_a_full_channel_refuses_new_users_but_not_more_tabs(presence: PresenceStore) -> None:
    assert await added(presence, "1", "presence-room", "1.1", "alice", None, 2) is True
    assert await added(presence, "1", "presence-room", "1.2", "bob", None, 2) is True

    with pytest.raises(PresenceFullError):
        await added(presence, "1", "presence-room", "1.3", "carol", None, 2)
    assert await added(presence, "1", "presence-room", "1.4", "alice", None, 2) is False

    assert await presence.members("1", "presence-room") == {"alice": None, "bob": None}
    assert await presence.subscription_count("1", "presence-room") == 3  # nothing recorded
    assert await presence.remove_member("1", "presence-room", "1.3") is None
    await presence.remove_member("1", "presence-room", "1.2")
    assert await added(presence, "1", "presence-room", "1.3", "carol", None, 2) is True


async def test_concurrent_joins_never_pass_the_limit(presence: PresenceStore) -> None:
    async def join(n: int) -> bool:
        try:
            await added(presence, "1", "presence-race", f"1.{n}", f"u{n}", None, 5)
        except PresenceFullError:
            return False
        return True

    admitted = await asyncio.gather(*(join(n) for n in range(20)))

    assert sum(admitted) == 5
    assert await presence.user_count("1", "presence-race") == 5


async def test_a_presence_subscribe_answers_with_the_count_and_the_roster(
    presence: PresenceStore,
) -> None:
    first = await presence.join_presence("1", "presence-room", "1.1", "alice", {"n": 1})
    other = await presence.join_presence("1", "presence-room", "1.2", "bob", None)
    tab = await presence.join_presence("1", "presence-room", "1.3", "alice", {"n": 2})
    again = await presence.join_presence("1", "presence-room", "1.3", "alice", {"n": 2})

    assert first == Joined(True, 1, {"alice": {"n": 1}})
    assert other == Joined(True, 2, {"alice": {"n": 1}, "bob": None})
    assert tab == again == Joined(False, 3, {"alice": {"n": 1}, "bob": None})
    assert await presence.channels("1") == {"presence-room": 3}


# --- Redis: one round trip, the same answers as memory -------------------------------------

SHARED = pytest.mark.parametrize("make_state", SHARED_STATE, indirect=True)


def record_requests(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every request the Redis client sends from now on: one per round trip (a pipeline or a
    script is one request, however many commands it runs)."""
    sent: list[object] = []
    send = AbstractConnection.send_packed_command

    async def recorded(
        self: AbstractConnection, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        sent.append(command)
        await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded)
    return sent


@SHARED
async def test_a_presence_subscribe_is_one_round_trip(
    make_state: MakeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    presence = make_state().presence
    await presence.join_presence("1", "presence-warm", "1.0", "warm", None)  # connect, load
    sent = record_requests(monkeypatch)

    await presence.join_presence("1", "presence-room", "1.1", "alice", {"n": 1}, 1)
    assert len(sent) == 1
    with pytest.raises(PresenceFullError):
        await presence.join_presence("1", "presence-room", "1.2", "bob", None, 1)
    assert len(sent) == 2


async def answer(
    presence: PresenceStore, socket_id: str, user_id: str, user_info: object
) -> Joined | str:
    try:
        return await presence.join_presence("1", "presence-room", socket_id, user_id, user_info, 3)
    except PresenceFullError:
        return "full"


@SHARED
async def test_memory_and_redis_answer_presence_subscribes_alike(
    make_state: MakeState, clock: FakeClock
) -> None:
    memory = open_state("memory://", node_id="a", clock=clock).presence
    redis = make_state().presence
    subscribes = [
        ("1.1", "alice", {"name": "A"}),
        ("1.2", "alice", {"name": "ignored"}),  # a second tab: not a new member
        ("1.3", "bob", None),
        ("1.4", "carol", {"tags": [1, 2]}),
        ("1.5", "dave", None),  # a fourth user: full
        ("1.6", "bob", None),  # another tab is always let in
        ("1.1", "alice", {"name": "A"}),  # the same connection again
    ]
    answers: dict[str, list[Joined | str]] = {"memory": [], "redis": []}

    for socket_id, user_id, user_info in subscribes:
        answers["memory"].append(await answer(memory, socket_id, user_id, user_info))
        answers["redis"].append(await answer(redis, socket_id, user_id, user_info))

    assert answers["memory"] == answers["redis"]
    assert [a if isinstance(a, str) else (a.new_member, a.count) for a in answers["redis"]] == [
        (True, 1),
        (False, 2),
        (True, 3),
        (True, 4),
        "full",
        (False, 5),
        (False, 5),
    ]
