"""Plans: named sets of app limits, and how an app's own settings override them.

An app on a plan takes every limit the plan sets, unless the app sets that limit itself
(a per-app override). The `free` plan always exists and follows Pusher's sandbox: 100
concurrent connections and 200,000 messages a day. Operators define other plans (and may
redefine `free`) in the config file's `[plans.NAME]` tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from ressonance.protocol.app import (
    BOOL_SETTINGS,
    CHOICE_SETTINGS,
    INT_SETTINGS,
    UNLIMITED,
    UNLIMITED_SETTINGS,
    App,
)
from ressonance.protocol.errors import ConfigError
from ressonance.protocol.webhooks import parse_endpoints

# What a plan may set: the limits and features, never the credentials or the name (nor the
# origins an app's pages are served from).
PLAN_SETTINGS: Final = (
    frozenset(INT_SETTINGS) | frozenset(BOOL_SETTINGS) - {"enabled"} | frozenset(CHOICE_SETTINGS)
) | {"history_channels"}
# What only an app sets for itself (a plan cannot): who may connect, where webhooks go.
OWN_SETTINGS: Final = frozenset(("allowed_origins", "webhooks"))

# A history pattern: channel name characters, with `*` for any run of them.
_HISTORY_PATTERN: Final = re.compile(r"[A-Za-z0-9_\-=@,.;*]{1,200}")
MAX_HISTORY_PATTERNS: Final = 100

Settings = Mapping[str, object]


_OR_UNLIMITED: Final = ", or -1 for no limit"


def setting_value(name: str, value: object, where: str) -> object:
    """`value` checked as the app setting `name` takes it (a list of origins becomes a tuple,
    a list of webhook endpoints a tuple of `WebhookEndpoint`).

    Settings come from TOML, the environment and JSON in app stores, so the type is checked
    here, once, for all of them. Raises ConfigError naming `where` and what is wrong.
    """
    if name in BOOL_SETTINGS:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false")
        return value
    if name in CHOICE_SETTINGS:
        choices = CHOICE_SETTINGS[name]
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string")
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(choices)}, not {value[:20]!r}")
        return value
    if name in INT_SETTINGS:
        return _int_value(value, where, unlimited=name in UNLIMITED_SETTINGS)
    return _list_value(name, value, where)


def _list_value(name: str, value: object, where: str) -> object:
    """The list settings: origins, history patterns and webhook endpoints."""
    if name == "allowed_origins":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f'{where}: must be a list of origins, like ["*.example.com"]')
        return tuple(value)
    if name == "history_channels":
        return _history_patterns(value, where)
    if name == "webhooks":
        return parse_endpoints(value, where)
    raise ConfigError(f"{where}: unknown setting")


def _history_patterns(value: object, where: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list | tuple)
        or len(value) > MAX_HISTORY_PATTERNS
        or not all(isinstance(v, str) and _HISTORY_PATTERN.fullmatch(v) for v in value)
    ):
        raise ConfigError(
            f"{where}: must be a list of at most {MAX_HISTORY_PATTERNS} channel name patterns, "
            'like ["chat-*", "private-orders-*"] (letters, digits, -_=@,.; and * only)'
        )
    return tuple(value)


def _int_value(value: object, where: str, *, unlimited: bool) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (value > 0 or (unlimited and value == UNLIMITED))
    ):
        raise ConfigError(f"{where}: must be a positive integer{_OR_UNLIMITED * unlimited}")
    return value


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    settings: Settings = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.settings) - PLAN_SETTINGS)
        if unknown:
            raise ConfigError(f"plans.{self.name}.{unknown[0]}: not a setting a plan can set")
        for name, value in self.settings.items():
            setting_value(name, value, f"plans.{self.name}.{name}")


FREE: Final = Plan(
    "free",
    MappingProxyType({"max_connections": 100, "max_messages_per_day": 200_000}),
)
BUILTIN_PLANS: Final[Mapping[str, Plan]] = MappingProxyType({FREE.name: FREE})


def resolve(
    *,
    id: str,
    key: str,
    secret: str,
    name: str = "",
    enabled: bool = True,
    plan: str = "",
    overrides: Settings | None = None,
    plans: Mapping[str, Plan] = BUILTIN_PLANS,
) -> App:
    """The effective App: its plan's settings, then its own overrides on top.

    Raises ConfigError when the plan does not exist (an app must never silently fall back to
    no limits) or a setting is unknown.
    """
    settings: dict[str, object] = {}
    if plan:
        chosen = plans.get(plan)
        if chosen is None:
            raise ConfigError(f"plan: no plan named {plan[:40]!r}")
        settings.update(chosen.settings)
    settings.update(overrides or {})
    unknown = sorted(set(settings) - PLAN_SETTINGS - OWN_SETTINGS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown app setting")
    checked = {name: setting_value(name, value, name) for name, value in settings.items()}
    return App(id=id, key=key, secret=secret, name=name, enabled=enabled, plan=plan, **checked)  # type: ignore[arg-type]
