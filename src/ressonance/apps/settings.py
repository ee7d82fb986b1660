"""One app setting given by a person or a script: checked as JSON, or parsed from text.

Settings enter from outside through the admin API (JSON) and the `ressonance apps` command
(`--set name=value` text). Both go through here, so a bad value is refused the same way
everywhere, with a `ConfigError` whose message starts with where the value was given (the
setting's name, or a path such as `settings.max_connections`). The type of each setting is
checked by `plans.setting_value`, as for every other source; this adds what only values from
outside need: only settings an app may set itself, bounded sizes, and JSON-compatible results
(lists of origins and history patterns are lists, webhooks a list of endpoint objects), as
an app registry stores them. As text, `webhooks` is the JSON array itself
(`RESSONANCE_APP_WEBHOOKS`, `--set webhooks=[...]`).
"""

from __future__ import annotations

import json
from typing import Final

import orjson

from ressonance.apps.plans import OWN_SETTINGS, setting_value
from ressonance.protocol.app import BOOL_SETTINGS, CHOICE_SETTINGS, INT_SETTINGS, LIST_SETTINGS
from ressonance.protocol.errors import ConfigError
from ressonance.protocol.webhooks import WebhookEndpoint, endpoints_json

# What an app may set for itself (on top of its plan): every limit and feature, never the
# credentials, the name, the plan or `enabled`, which have their own operations.
APP_SETTINGS: Final = (
    frozenset((*(s for s in BOOL_SETTINGS if s != "enabled"), *INT_SETTINGS, *CHOICE_SETTINGS))
    | set(LIST_SETTINGS)
    | OWN_SETTINGS
)

# The largest integer a JSON number carries exactly (and every backend stores).
MAX_INT: Final = 2**53 - 1
MAX_ORIGINS: Final = 100
MAX_ORIGIN_LENGTH: Final = 253

_TRUE: Final = ("true", "1", "yes", "on")
_FALSE: Final = ("false", "0", "no", "off")


def check_setting(name: str, value: object, where: str | None = None) -> object:
    """`value` if it is valid for the setting `name`; ConfigError naming `where` otherwise."""
    where = name if where is None else where
    if name not in APP_SETTINGS:
        raise ConfigError(f"{where}: unknown app setting")
    checked = setting_value(name, value, where)
    if isinstance(checked, int) and not isinstance(checked, bool) and checked > MAX_INT:
        raise ConfigError(f"{where}: must be at most {MAX_INT}")
    if name == "webhooks":
        return endpoints_json(checked)  # type: ignore[arg-type]
    if isinstance(checked, tuple):  # a list setting
        return _origins(checked, where) if name == "allowed_origins" else list(checked)
    return checked


def json_value(value: object) -> object:
    """A checked setting as JSON keeps it: tuples as lists, webhook endpoints as objects."""
    if isinstance(value, tuple):
        return [v.as_json() if isinstance(v, WebhookEndpoint) else v for v in value]
    return value


def parse_setting(name: str, text: str, where: str | None = None) -> object:
    """The value of a setting typed as text (`true`, `500`, `-1`, `a.com,b.com`), checked."""
    where = name if where is None else where
    return check_setting(name, text_value(name, text, where), where)


def text_value(name: str, text: str, where: str) -> object:
    """`text` read as the type of the setting `name` (a boolean word, an integer, a list as a
    JSON array or a comma-separated list; anything else stays text); ConfigError naming
    `where` if it cannot be."""
    if name in BOOL_SETTINGS:
        lowered = text.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ConfigError(f"{where}: must be true or false, not {text[:20]!r}")
        return lowered in _TRUE
    if name in INT_SETTINGS:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where}: must be an integer, not {text[:20]!r}") from None
    if name in LIST_SETTINGS:
        return _list_value(text, where)
    if name == "webhooks":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: must be a JSON array of endpoints ({exc})") from None
    return text


def _list_value(text: str, where: str) -> object:
    """A JSON array (`["chat-*"]`), or else a comma-separated list (`chat-*,news-*`)."""
    if text.lstrip().startswith("["):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{where}: not a valid JSON array: {text[:40]!r}") from None
    return [part.strip() for part in text.split(",") if part.strip()]


def _origins(origins: tuple[str, ...], where: str) -> list[str]:
    if not origins:
        raise ConfigError(f'{where}: must be a list of origins, like ["*.example.com"]')
    if len(origins) > MAX_ORIGINS:
        raise ConfigError(f"{where}: at most {MAX_ORIGINS} origins")
    if any(len(origin) > MAX_ORIGIN_LENGTH for origin in origins):
        raise ConfigError(f"{where}: each origin must be at most {MAX_ORIGIN_LENGTH} characters")
    return list(origins)
