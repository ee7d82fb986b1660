"""Plans: named sets of app limits, and how an app's own settings override them.

An app on a plan takes every limit the plan sets, unless the app sets that limit itself
(a per-app override). The `free` plan always exists and follows Pusher's sandbox: 100
concurrent connections and 200,000 messages a day. Operators define other plans (and may
redefine `free`) in the config file's `[plans.NAME]` tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from ressonance.protocol.app import BOOL_SETTINGS, CHOICE_SETTINGS, INT_SETTINGS, App
from ressonance.protocol.errors import ConfigError

# What a plan may set: the limits and features, never the credentials or the name.
PLAN_SETTINGS: Final = (
    frozenset(INT_SETTINGS) | frozenset(BOOL_SETTINGS) - {"enabled"} | frozenset(CHOICE_SETTINGS)
)

Settings = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    settings: Settings = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.settings) - PLAN_SETTINGS)
        if unknown:
            raise ConfigError(f"plans.{self.name}.{unknown[0]}: not a setting a plan can set")


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
    unknown = sorted(set(settings) - PLAN_SETTINGS - {"allowed_origins"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown app setting")
    return App(id=id, key=key, secret=secret, name=name, enabled=enabled, plan=plan, **settings)  # type: ignore[arg-type]
