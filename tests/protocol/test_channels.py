"""Channel names: kind by prefix (longest first, with the dash) and name validity (§3)."""

from __future__ import annotations

import pytest

from ressonance.protocol.channels import ChannelKind, channel_name_problem, classify

PUBLIC, PRIVATE, ENCRYPTED, PRESENCE, USER = (
    ChannelKind.PUBLIC,
    ChannelKind.PRIVATE,
    ChannelKind.ENCRYPTED,
    ChannelKind.PRESENCE,
    ChannelKind.USER,
)


@pytest.mark.parametrize(
    ("name", "kind", "cached"),
    [
        ("my-channel", PUBLIC, False),
        ("cache-x", PUBLIC, True),
        ("private-x", PRIVATE, False),
        ("private-cache-x", PRIVATE, True),
        ("private-encrypted-x", ENCRYPTED, False),
        ("private-encrypted-cache-x", ENCRYPTED, True),
        ("presence-x", PRESENCE, False),
        ("presence-cache-x", PRESENCE, True),
        ("#server-to-user-42", USER, False),
        # The prefix includes its dash: these are public channels (unlike Reverb, §3).
        ("privatex", PUBLIC, False),
        ("presencex", PUBLIC, False),
        ("cachex", PUBLIC, False),
        ("private", PUBLIC, False),
        # A prefix only counts at the start of the name.
        ("my-private-x", PUBLIC, False),
        ("private-presence-x", PRIVATE, False),
        ("presence-private-x", PRESENCE, False),
        ("private-encryptedx", PRIVATE, False),
    ],
)
def test_classify(name: str, kind: ChannelKind, cached: bool) -> None:
    channel = classify(name)

    assert (channel.name, channel.kind, channel.cached) == (name, kind, cached)


@pytest.mark.parametrize(
    ("name", "needs_auth", "is_presence", "accepts_client_events", "user_id"),
    [
        ("my-channel", False, False, False, ""),
        ("cache-x", False, False, False, ""),
        ("private-x", True, False, True, ""),
        ("private-cache-x", True, False, True, ""),
        # Encrypted channels: pusher-js cannot send client events on them (§2.4).
        ("private-encrypted-x", True, False, False, ""),
        ("private-encrypted-cache-x", True, False, False, ""),
        ("presence-x", True, True, True, ""),
        ("presence-cache-x", True, True, True, ""),
        # Authorized by the signed-in user, not by a signature (§2.5).
        ("#server-to-user-42", False, False, False, "42"),
        ("#server-to-user-a-b", False, False, False, "a-b"),
    ],
)
def test_channel_rules(
    name: str, needs_auth: bool, is_presence: bool, accepts_client_events: bool, user_id: str
) -> None:
    channel = classify(name)

    assert channel.needs_auth is needs_auth
    assert channel.is_presence is is_presence
    assert channel.accepts_client_events is accepts_client_events
    assert channel.user_id == user_id


EMPTY = "Channel name must be a non-empty string"
CHARSET = "Channel name may only contain letters, digits and -_=@,.;"


@pytest.mark.parametrize(
    ("name", "max_length", "problem"),
    [
        ("my-channel", 200, None),
        ("-_=@,.;azAZ09", 200, None),
        ("presence-room", 200, None),
        ("#server-to-user-42", 200, None),
        ("a" * 200, 200, None),
        ("a" * 201, 200, "Channel name is longer than 200 characters"),
        ("a" * 164, 164, None),
        ("private-" + "a" * 157, 164, "Channel name is longer than 164 characters"),
        # The #server-to-user- prefix counts towards the limit.
        ("#server-to-user-" + "1" * 185, 200, "Channel name is longer than 200 characters"),
        ("", 200, EMPTY),
        (None, 200, EMPTY),
        (42, 200, EMPTY),
        (["my-channel"], 200, EMPTY),
        ("my channel", 200, CHARSET),
        ("my/channel", 200, CHARSET),
        ("caf\u00e9", 200, CHARSET),
        ("line\n", 200, CHARSET),
        ("App\\Events", 200, CHARSET),
        # `#` is reserved: only the user-channel prefix may use it (§3, §2.5).
        ("#my-channel", 200, CHARSET),
        ("#server-to-user-", 200, CHARSET),
        ("#server-to-user-4#2", 200, CHARSET),
        ("private-#server-to-user-42", 200, CHARSET),
    ],
)
def test_channel_name_problem(name: object, max_length: int, problem: str | None) -> None:
    assert channel_name_problem(name, max_length) == problem
