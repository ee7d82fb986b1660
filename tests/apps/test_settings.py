from __future__ import annotations

import pytest

from ressonance.apps.settings import APP_SETTINGS, MAX_INT, check_setting, parse_setting
from ressonance.protocol.app import App
from ressonance.protocol.errors import ConfigError


def test_every_setting_an_app_takes_is_settable_except_identity_and_state() -> None:
    fields = set(App.__dataclass_fields__)
    assert fields - APP_SETTINGS == {"id", "key", "secret", "name", "enabled", "plan"}
    assert fields >= APP_SETTINGS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("watchlist", True),
        ("enable_client_messages", False),
        ("max_connections", -1),
        ("max_connections", 1),
        ("max_messages_per_day", MAX_INT),
        ("activity_timeout", 30),
        ("slow_client_policy", "drop_oldest"),
        ("allowed_origins", ["https://a.example", "*.b.example"]),
        ("history_channels", ["chat-*", "private-orders-*", "news"]),
        ("history_channels", []),
        ("history_size", 10_000),
        ("history_ttl", 300),
        ("idempotency_ttl", 86_400),
    ],
)
def test_valid_values_are_kept(name: str, value: object) -> None:
    assert check_setting(name, value) == value


HOOKS = [{"url": "https://a.example/h", "event_types": ["member_added"]}]


def test_webhooks_come_back_as_json() -> None:
    assert check_setting("webhooks", HOOKS) == HOOKS
    assert (
        parse_setting(
            "webhooks", '[{"url": "https://a.example/h", "event_types": ["member_added"]}]'
        )
        == HOOKS
    )


def test_bad_webhooks_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^settings.webhooks\[0\].event_types\[0\]: unknown"):
        check_setting(
            "webhooks", [{"url": "https://a/", "event_types": ["x"]}], "settings.webhooks"
        )
    with pytest.raises(ConfigError, match=r"^--set webhooks: must be a JSON array of endpoints"):
        parse_setting("webhooks", "[{", "--set webhooks")


def test_origins_come_back_as_a_list() -> None:
    assert check_setting("allowed_origins", ("a.example",)) == ["a.example"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("colour", 1, "colour: unknown app setting"),
        ("enabled", False, "enabled: unknown app setting"),
        ("secret", "x", "secret: unknown app setting"),
        ("watchlist", 1, "watchlist: must be true or false"),
        ("watchlist", "true", "watchlist: must be true or false"),
        ("slow_client_policy", "drop", "slow_client_policy: must be one of close, drop_oldest"),
        ("slow_client_policy", 1, "slow_client_policy: must be a string"),
        ("activity_timeout", "30", "activity_timeout: must be a positive integer$"),
        ("activity_timeout", True, "activity_timeout: must be a positive integer$"),
        ("activity_timeout", 1.5, "activity_timeout: must be a positive integer$"),
        ("activity_timeout", 0, "activity_timeout: must be a positive integer$"),
        ("activity_timeout", -1, "activity_timeout: must be a positive integer$"),
        ("max_connections", 0, "max_connections: must be a positive integer, or -1 for no limit"),
        ("max_connections", -2, "max_connections: must be a positive integer, or -1 for no"),
        ("max_connections", MAX_INT + 1, f"max_connections: must be at most {MAX_INT}"),
        ("activity_timeout", MAX_INT + 1, f"activity_timeout: must be at most {MAX_INT}"),
        ("allowed_origins", "*", "allowed_origins: must be a list of origins"),
        ("allowed_origins", [], "allowed_origins: must be a list of origins"),
        ("allowed_origins", [""], "allowed_origins: must be a list of origins"),
        ("allowed_origins", [1], "allowed_origins: must be a list of origins"),
        ("allowed_origins", ["x" * 254], "allowed_origins: each origin must be at most 253"),
        ("allowed_origins", ["a"] * 101, "allowed_origins: at most 100 origins"),
        ("history_channels", "chat-*", "history_channels: must be a list of at most 100"),
        ("history_channels", [""], "history_channels: must be a list"),
        ("history_channels", ["chat room"], "history_channels: must be a list"),
        ("history_channels", ["chat-?"], "history_channels: must be a list"),
        ("history_channels", ["x" * 201], "history_channels: must be a list"),
        ("history_channels", ["a"] * 101, "history_channels: must be a list"),
        ("history_size", 0, "history_size: must be a positive integer$"),
        ("history_ttl", -1, "history_ttl: must be a positive integer$"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        check_setting(name, value)


def test_the_error_names_where_the_value_was_given() -> None:
    with pytest.raises(ConfigError, match=r"^settings\.max_connections: must be"):
        check_setting("max_connections", 0, "settings.max_connections")


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("watchlist", "true", True),
        ("watchlist", " Yes ", True),
        ("watchlist", "off", False),
        ("watchlist", "0", False),
        ("max_connections", "-1", -1),
        ("max_connections", "500", 500),
        ("slow_client_policy", "drop_oldest", "drop_oldest"),
        (
            "allowed_origins",
            "https://a.example, *.b.example,",
            ["https://a.example", "*.b.example"],
        ),
        ("history_channels", "chat-*, private-orders-*", ["chat-*", "private-orders-*"]),
        ("history_channels", '["chat-*", "news"]', ["chat-*", "news"]),
        ("history_channels", " [] ", []),
        ("history_ttl", "60", 60),
    ],
)
def test_text_is_parsed_by_the_type_of_the_setting(name: str, text: str, value: object) -> None:
    assert parse_setting(name, text) == value


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("watchlist", "maybe", "watchlist: must be true or false, not 'maybe'"),
        ("max_connections", "many", "max_connections: must be an integer, not 'many'"),
        ("max_connections", "0", "max_connections: must be a positive integer, or -1"),
        ("allowed_origins", " , ", "allowed_origins: must be a list of origins"),
        ("history_channels", '["chat-*"', "history_channels: not a valid JSON array"),
        ("history_channels", "[1]", "history_channels: must be a list"),
        ("colour", "red", "colour: unknown app setting"),
    ],
)
def test_bad_text_is_refused_naming_the_setting(name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        parse_setting(name, text)


def test_parsed_text_names_where_it_was_given() -> None:
    with pytest.raises(ConfigError, match=r"^--set watchlist: must be true or false"):
        parse_setting("watchlist", "x", "--set watchlist")
