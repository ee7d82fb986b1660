from __future__ import annotations

import pytest

from ressonance.apps.plans import BUILTIN_PLANS, FREE, Plan, resolve, setting_value
from ressonance.protocol.app import UNLIMITED
from ressonance.protocol.errors import ConfigError


def test_no_plan_keeps_the_defaults() -> None:
    app = resolve(id="1", key="k", secret="s")
    assert app.plan == ""
    assert app.max_connections == UNLIMITED
    assert app.max_messages_per_day == UNLIMITED


def test_free_plan_is_pushers_sandbox() -> None:
    app = resolve(id="1", key="k", secret="s", plan="free")
    assert BUILTIN_PLANS["free"] is FREE
    assert (app.plan, app.max_connections, app.max_messages_per_day) == ("free", 100, 200_000)


def test_app_overrides_win_over_its_plan() -> None:
    app = resolve(id="1", key="k", secret="s", plan="free", overrides={"max_connections": 150})
    assert app.max_connections == 150
    assert app.max_messages_per_day == 200_000


def test_operator_plans_replace_the_builtin_set() -> None:
    pro = Plan("pro", {"max_connections": 10_000, "enable_client_messages": True})
    app = resolve(id="1", key="k", secret="s", name="n", plan="pro", plans={"pro": pro})
    assert (app.name, app.max_connections, app.enable_client_messages) == ("n", 10_000, True)


def test_unknown_plan_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ConfigError, match="no plan named 'gold'"):
        resolve(id="1", key="k", secret="s", plan="gold")


def test_plans_cannot_set_credentials() -> None:
    with pytest.raises(ConfigError, match=r"plans\.bad\.secret: not a setting a plan can set"):
        Plan("bad", {"secret": "x"})


def test_unknown_override_is_named() -> None:
    with pytest.raises(ConfigError, match="colour: unknown app setting"):
        resolve(id="1", key="k", secret="s", overrides={"colour": 1})


def test_setting_values_name_an_unknown_setting_and_the_no_limit_value() -> None:
    with pytest.raises(ConfigError, match=r"^apps\[0\]\.colour: unknown setting$"):
        setting_value("colour", 1, "apps[0].colour")
    with pytest.raises(ConfigError, match=r"^x: must be a positive integer, or -1 for no limit$"):
        setting_value("max_connections", 0, "x")
    with pytest.raises(ConfigError, match=r"^x: must be a positive integer$"):
        setting_value("activity_timeout", -1, "x")
    assert setting_value("max_connections", -1, "x") == -1


def test_a_plan_sets_history_and_an_app_overrides_it() -> None:
    plan = Plan("chatty", {"history_channels": ["chat-*"], "history_size": 500, "history_ttl": 60})

    on_plan = resolve(id="1", key="k", secret="s", plan="chatty", plans={"chatty": plan})
    own = resolve(
        id="1",
        key="k",
        secret="s",
        plan="chatty",
        overrides={"history_channels": ["orders-*"]},
        plans={"chatty": plan},
    )

    assert (on_plan.history_channels, on_plan.history_size, on_plan.history_ttl) == (
        ("chat-*",),
        500,
        60,
    )
    assert own.history_channels == ("orders-*",)
    assert own.history_size == 500
