"""Managing apps: create, list, show, update, disable, enable, rotate a secret, delete.

What the `ressonance apps` command and the admin HTTP API both call, over any `AppRegistry`.
Rules kept here, so both front ends keep them:

- Ids are digits only (7, like Pusher's), keys 20 hex characters, secrets 32 hex characters
  (128 bits), all drawn with `secrets`. A caller may choose the id and key (to move an app
  from Pusher or another server); the secret is always generated.
- A secret leaves this module only in the `Issued` result of `create` and `rotate_secret`.
  Everything else (`AppView`, logs, `repr`s) carries a hint: its last 4 characters.
- Every change is validated before it is stored: each setting's value (apps/settings.py)
  and the whole app resolved against the configured plans (apps/plans.py), so a registry
  never holds an app that nodes would refuse to load. Failures raise `InvalidAppError`
  naming the field.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from ressonance.apps.base import (
    AppExistsError,
    AppNotFoundError,
    AppRecord,
    AppRegistry,
    resolve_record,
)
from ressonance.apps.plans import BUILTIN_PLANS, Plan
from ressonance.apps.settings import APP_SETTINGS, check_setting, json_value
from ressonance.protocol.app import App
from ressonance.protocol.errors import ConfigError, RessonanceError

log = logging.getLogger(__name__)

ID_DIGITS: Final = 7
MAX_ID_LENGTH: Final = 20
MAX_NAME_LENGTH: Final = 200
KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,100}")
_CREDENTIALS: Final = frozenset({"id", "key", "secret", "name", "enabled", "plan"})
_ID_ATTEMPTS: Final = 10

Settings = Mapping[str, object]


class InvalidAppError(RessonanceError, ValueError):
    """A value given for an app is not valid; the message starts with the field's name."""


@dataclass(frozen=True, slots=True)
class AppView:
    """An app as it is shown: everything but its secret, of which only a hint."""

    id: str
    key: str
    name: str
    enabled: bool
    plan: str
    settings: Settings  # the app's own settings (overrides of its plan)
    secret_hint: str
    created_at: float
    updated_at: float
    # Plan and defaults included (`show` only); None when the app cannot be resolved.
    effective: Settings | None = None

    def to_json(self) -> dict[str, object]:
        """The stable machine form (the CLI's `--json` and the admin API's bodies)."""
        body: dict[str, object] = {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "enabled": self.enabled,
            "plan": self.plan,
            "settings": dict(self.settings),
            "secret_hint": self.secret_hint,
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
        }
        if self.effective is not None:
            body["effective_settings"] = dict(self.effective)
        return body


@dataclass(frozen=True, slots=True)
class Issued:
    """The result of `create` and `rotate_secret`: the one time a secret is given out."""

    app: AppView
    secret: str = field(repr=False)

    def to_json(self) -> dict[str, object]:
        return {**self.app.to_json(), "secret": self.secret}


@dataclass(frozen=True, slots=True)
class AppChange:
    """What `update` changes; None leaves a field as it is.

    In `settings`, a value sets the app's own setting and None removes it (the plan's value,
    or the default, applies again), as in a JSON merge patch (RFC 7396).
    """

    name: str | None = None
    plan: str | None = None
    enabled: bool | None = None
    settings: Mapping[str, object | None] = field(default_factory=lambda: MappingProxyType({}))


def timestamp(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC time, like 2024-05-01T12:00:00Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def secret_hint(secret: str) -> str:
    """Enough of a secret to tell which one is in use, not enough to matter."""
    return "****" + secret[-4:] if len(secret) >= 16 else "****"


class AppAdmin:
    """The operations on apps, over one registry and the configured plans."""

    def __init__(
        self,
        registry: AppRegistry,
        plans: Mapping[str, Plan] = BUILTIN_PLANS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.plans = plans
        self.clock = clock

    async def create(
        self,
        *,
        name: str = "",
        plan: str = "",
        settings: Settings | None = None,
        enabled: bool = True,
        app_id: str | None = None,
        key: str | None = None,
    ) -> Issued:
        """A new app with a fresh secret; AppExistsError when the id or key is taken."""
        if app_id is not None:
            _check_id(app_id)
        if key is not None and not KEY_PATTERN.fullmatch(key):
            raise InvalidAppError("key: 1 to 100 letters, digits, '-' or '_'")
        now = self.clock()
        record = AppRecord(
            id=app_id if app_id is not None else await self._free_id(),
            key=key if key is not None else secrets.token_hex(10),
            secret=secrets.token_hex(16),
            name=_check_name(name),
            enabled=enabled,
            plan=plan,
            settings=MappingProxyType(_check_settings(settings or {})),
            created_at=now,
            updated_at=now,
        )
        self._resolve(record)
        await self.registry.create(record)
        log.info("event=app_created app_id=%s plan=%s", record.id, record.plan or "-")
        return Issued(self._view(await self._stored(record)), record.secret)

    async def all(self) -> list[AppView]:
        """Every app, ordered by id."""
        return [self._view(record) for record in await self.registry.records()]

    async def show(self, app_id: str) -> AppView:
        """One app, with its effective settings (plan and defaults included)."""
        record = await self._record(app_id)
        try:
            app = self._resolve(record)
        except InvalidAppError:
            return self._view(record)  # e.g. its plan was removed from the config
        return replace(self._view(record), effective=effective_settings(app))

    async def update(self, app_id: str, change: AppChange) -> AppView:
        record = await self._record(app_id)
        settings = dict(record.settings)
        for name, value in change.settings.items():
            if value is None:
                if name not in APP_SETTINGS:
                    raise InvalidAppError(f"settings.{name}: unknown app setting")
                settings.pop(name, None)
            else:
                settings[name] = _check_value(name, value)
        updated = replace(
            record,
            name=record.name if change.name is None else _check_name(change.name),
            plan=record.plan if change.plan is None else change.plan,
            enabled=record.enabled if change.enabled is None else change.enabled,
            settings=MappingProxyType(settings),
        )
        return await self._store(updated, "app_updated")

    async def disable(self, app_id: str) -> AppView:
        """Refuse the app's connections (4003) and HTTP API requests (403) from now on."""
        return await self.update(app_id, AppChange(enabled=False))

    async def enable(self, app_id: str) -> AppView:
        return await self.update(app_id, AppChange(enabled=True))

    async def rotate_secret(self, app_id: str) -> Issued:
        """A new secret: requests and authorizations signed with the old one fail from now."""
        record = await self._record(app_id)
        updated = replace(record, secret=secrets.token_hex(16))
        return Issued(await self._store(updated, "app_secret_rotated"), updated.secret)

    async def delete(self, app_id: str) -> None:
        if not await self.registry.delete(app_id):
            raise AppNotFoundError(f"no app with id {app_id[:40]!r}")
        log.info("event=app_deleted app_id=%s", app_id)

    async def _record(self, app_id: str) -> AppRecord:
        record = await self.registry.record(app_id)
        if record is None:
            raise AppNotFoundError(f"no app with id {app_id[:40]!r}")
        return record

    async def _store(self, record: AppRecord, event: str) -> AppView:
        self._resolve(record)
        record = replace(record, updated_at=self.clock())
        await self.registry.replace(record)
        log.info("event=%s app_id=%s enabled=%s", event, record.id, record.enabled)
        return self._view(await self._stored(record))

    async def _stored(self, record: AppRecord) -> AppRecord:
        """`record` as the registry keeps it (it may stamp the times itself)."""
        return await self.registry.record(record.id) or record

    async def _free_id(self) -> str:
        for _ in range(_ID_ATTEMPTS):
            candidate = str(10 ** (ID_DIGITS - 1) + secrets.randbelow(9 * 10 ** (ID_DIGITS - 1)))
            if await self.registry.record(candidate) is None:
                return candidate
        raise AppExistsError("could not find a free app id; pass one explicitly")

    async def resolved(self, app_id: str) -> App:
        """The app as the nodes serve it (its webhook endpoints, say)."""
        return self._resolve(await self._record(app_id))

    def _resolve(self, record: AppRecord) -> App:
        try:
            return resolve_record(record, self.plans)
        except ConfigError as exc:
            raise InvalidAppError(str(exc)) from None

    def _view(self, record: AppRecord) -> AppView:
        return AppView(
            id=record.id,
            key=record.key,
            name=record.name,
            enabled=record.enabled,
            plan=record.plan,
            settings=record.settings,
            secret_hint=secret_hint(record.secret),
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


def effective_settings(app: App) -> dict[str, object]:
    """Every setting of a resolved app (not its credentials), JSON-compatible."""
    values: dict[str, object] = {}
    for item in fields(app):
        if item.name not in _CREDENTIALS:
            value = getattr(app, item.name)
            values[item.name] = json_value(value)
    return values


def _check_id(app_id: str) -> None:
    if not (app_id.isascii() and app_id.isdigit() and len(app_id) <= MAX_ID_LENGTH):
        raise InvalidAppError(
            f"id: 1 to {MAX_ID_LENGTH} digits (the Pusher SDKs reject other app ids)"
        )


def _check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidAppError(f"name: at most {MAX_NAME_LENGTH} characters")
    return name


def _check_value(name: str, value: object) -> object:
    try:
        return check_setting(name, value, f"settings.{name}")
    except ConfigError as exc:
        raise InvalidAppError(str(exc)) from None


def _check_settings(settings: Settings) -> dict[str, object]:
    return {name: _check_value(name, value) for name, value in settings.items()}
