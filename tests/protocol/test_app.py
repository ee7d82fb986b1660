"""App settings: the documented defaults (§3, §4, §5, §8) and the derived byte limits."""

from __future__ import annotations

import dataclasses

import pytest

from ressonance.protocol.app import BOOL_SETTINGS, INT_SETTINGS, UNLIMITED, App


def make_app(**settings: object) -> App:
    return App(id="1", key="key", secret="secret", **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "default"),
    [
        ("enabled", True),
        ("enable_client_messages", False),
        ("enable_user_authentication", False),
        ("user_authentication_timeout", 30),
        ("activity_timeout", 120),
        ("allowed_origins", ("*",)),
        ("max_connections", UNLIMITED),
        ("max_presence_members_per_channel", 100),
        ("max_presence_member_size_in_kb", 1),
        ("max_channel_name_length", 200),
        ("max_event_channels_at_once", 100),
        ("max_event_name_length", 200),
        ("max_event_payload_in_kb", 10),
        ("max_event_batch_size", 10),
        ("max_client_events_per_sec", 10),
        ("max_watchlist_size", 100),
    ],
)
def test_defaults_follow_pusher(setting: str, default: object) -> None:
    assert getattr(make_app(), setting) == default


@pytest.mark.parametrize(
    ("settings", "payload_bytes", "member_bytes"),
    [
        ({}, 10 * 1024, 1024),
        ({"max_event_payload_in_kb": 100, "max_presence_member_size_in_kb": 2}, 102400, 2048),
    ],
)
def test_byte_limits(settings: dict[str, int], payload_bytes: int, member_bytes: int) -> None:
    app = make_app(**settings)

    assert (app.max_payload_bytes, app.max_member_bytes) == (payload_bytes, member_bytes)


@pytest.mark.parametrize(
    ("names", "kind"),
    [(BOOL_SETTINGS, bool), (INT_SETTINGS, int)],
)
def test_operator_settings_name_app_fields_of_their_type(
    names: tuple[str, ...], kind: type
) -> None:
    fields = {f.name for f in dataclasses.fields(App)}
    app = make_app()

    assert set(names) <= fields
    assert all(type(getattr(app, name)) is kind for name in names)
