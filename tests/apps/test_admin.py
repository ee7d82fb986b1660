"""Managing apps (apps/admin.py) over a memory registry: what an operator asks and gets back."""

from __future__ import annotations

import logging
import re

import pytest

from ressonance.apps.admin import AppAdmin, AppChange, InvalidAppError, secret_hint, timestamp
from ressonance.apps.base import AppExistsError, AppNotFoundError, AppRecord
from ressonance.apps.memory import MemoryAppRegistry
from ressonance.apps.plans import FREE, Plan
from tests.fakes import START_TIME, FakeClock

PRO = Plan("pro", {"max_connections": 10_000, "enable_client_messages": True})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> MemoryAppRegistry:
    return MemoryAppRegistry(clock=clock)


@pytest.fixture
def admin(registry: MemoryAppRegistry, clock: FakeClock) -> AppAdmin:
    return AppAdmin(registry, {"free": FREE, "pro": PRO}, clock)


async def test_create_generates_pusher_like_credentials_and_gives_the_secret_once(
    admin: AppAdmin, registry: MemoryAppRegistry
) -> None:
    issued = await admin.create(name="Shop", plan="free")

    assert re.fullmatch(r"[1-9]\d{6}", issued.app.id)
    assert re.fullmatch(r"[0-9a-f]{20}", issued.app.key)
    assert re.fullmatch(r"[0-9a-f]{32}", issued.secret)
    stored = await registry.record(issued.app.id)
    assert stored is not None
    assert (stored.key, stored.secret, stored.name, stored.plan, stored.enabled) == (
        issued.app.key,
        issued.secret,
        "Shop",
        "free",
        True,
    )
    assert stored.created_at == stored.updated_at == START_TIME
    assert issued.to_json()["secret"] == issued.secret
    assert issued.app.secret_hint == "****" + issued.secret[-4:]


async def test_secrets_never_show_outside_the_issued_result(admin: AppAdmin) -> None:
    issued = await admin.create(name="Shop")
    secret = issued.secret

    shown = [
        repr(issued),
        repr(await admin.show(issued.app.id)),
        str((await admin.show(issued.app.id)).to_json()),
        str([view.to_json() for view in await admin.all()]),
        repr(await admin.registry.record(issued.app.id)),
        repr(admin._resolve((await admin.registry.records())[0])),
    ]
    for text in shown:
        assert secret not in text


async def test_each_create_draws_new_credentials(admin: AppAdmin) -> None:
    first, second = await admin.create(), await admin.create()
    assert first.app.id != second.app.id
    assert first.app.key != second.app.key
    assert first.secret != second.secret


async def test_a_chosen_id_and_key_are_kept(admin: AppAdmin) -> None:
    issued = await admin.create(app_id="1234", key="pusher-key_1")
    assert (issued.app.id, issued.app.key) == ("1234", "pusher-key_1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_id": "abc"}, "id: 1 to 20 digits"),
        ({"app_id": ""}, "id: 1 to 20 digits"),
        ({"app_id": "1" * 21}, "id: 1 to 20 digits"),
        ({"app_id": "١٢٣"}, "id: 1 to 20 digits"),  # Arabic-Indic digits: isdigit() but not ASCII
        ({"key": "has:colon"}, "key: 1 to 100 letters, digits"),
        ({"key": ""}, "key: 1 to 100 letters"),
        ({"name": "n" * 201}, "name: at most 200 characters"),
        ({"plan": "gold"}, "plan: no plan named 'gold'"),
        (
            {"settings": {"max_connections": 0}},
            "settings.max_connections: must be a positive integer, or -1",
        ),
        ({"settings": {"colour": "red"}}, "settings.colour: unknown app setting"),
        ({"settings": {"secret": "mine"}}, "settings.secret: unknown app setting"),
    ],
)
async def test_create_refuses_bad_values_naming_the_field(
    admin: AppAdmin, registry: MemoryAppRegistry, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidAppError, match=f"^{re.escape(message)}"):
        await admin.create(**kwargs)  # type: ignore[arg-type]
    assert await registry.records() == []


async def test_create_refuses_a_taken_id_or_key(admin: AppAdmin) -> None:
    await admin.create(app_id="1", key="taken")
    with pytest.raises(AppExistsError):
        await admin.create(app_id="1")
    with pytest.raises(AppExistsError):
        await admin.create(key="taken")


async def test_all_lists_apps_by_id_without_effective_settings(admin: AppAdmin) -> None:
    await admin.create(app_id="2", name="b")
    await admin.create(app_id="1", name="a")
    views = await admin.all()
    assert [(v.id, v.name) for v in views] == [("1", "a"), ("2", "b")]
    assert all(v.effective is None for v in views)
    assert "effective_settings" not in views[0].to_json()


async def test_show_has_the_plan_and_overrides_resolved(admin: AppAdmin) -> None:
    issued = await admin.create(plan="pro", settings={"max_connections": 50})

    body = (await admin.show(issued.app.id)).to_json()

    assert body["settings"] == {"max_connections": 50}
    effective = body["effective_settings"]
    assert isinstance(effective, dict)
    assert effective["max_connections"] == 50  # the app's own value wins
    assert effective["enable_client_messages"] is True  # from the plan
    assert effective["activity_timeout"] == 120  # the default
    assert effective["allowed_origins"] == ["*"]
    assert not {"id", "key", "secret", "name", "plan", "enabled"} & set(effective)
    assert body["created_at"] == "2023-11-14T22:13:20Z"


async def test_show_still_answers_when_the_apps_plan_is_gone(registry: MemoryAppRegistry) -> None:
    await registry.create(AppRecord("1", "k", "s" * 32, plan="gold"))
    view = await AppAdmin(registry).show("1")
    assert view.plan == "gold"
    assert view.effective is None


async def test_missing_apps_are_not_found(admin: AppAdmin) -> None:
    for operation in (
        admin.show("9"),
        admin.update("9", AppChange(name="x")),
        admin.disable("9"),
        admin.enable("9"),
        admin.rotate_secret("9"),
        admin.delete("9"),
    ):
        with pytest.raises(AppNotFoundError, match="no app with id '9'"):
            await operation


async def test_update_sets_and_unsets_overrides_and_keeps_the_rest(
    admin: AppAdmin, registry: MemoryAppRegistry, clock: FakeClock
) -> None:
    issued = await admin.create(name="Shop", settings={"max_connections": 5, "watchlist": True})
    clock.advance(60)

    view = await admin.update(
        issued.app.id,
        AppChange(plan="free", settings={"max_connections": None, "activity_timeout": 30}),
    )

    assert view.settings == {"watchlist": True, "activity_timeout": 30}
    assert (view.name, view.plan, view.enabled) == ("Shop", "free", True)
    assert view.updated_at == START_TIME + 60
    assert view.created_at == START_TIME
    stored = await registry.record(issued.app.id)
    assert stored is not None
    assert stored.secret == issued.secret
    assert (await admin.show(issued.app.id)).effective["max_connections"] == 100  # type: ignore[index]


async def test_update_to_no_plan_and_a_new_name(admin: AppAdmin) -> None:
    issued = await admin.create(plan="free", name="old")
    view = await admin.update(issued.app.id, AppChange(plan="", name="new"))
    assert (view.plan, view.name) == ("", "new")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (AppChange(plan="gold"), "plan: no plan named 'gold'"),
        (AppChange(name="n" * 201), "name: at most 200 characters"),
        (AppChange(settings={"watchlist": "yes"}), "settings.watchlist: must be true or false"),
        (AppChange(settings={"colour": None}), "settings.colour: unknown app setting"),
        (AppChange(settings={"enabled": False}), "settings.enabled: unknown app setting"),
    ],
)
async def test_update_refuses_bad_values_and_changes_nothing(
    admin: AppAdmin, registry: MemoryAppRegistry, change: AppChange, message: str
) -> None:
    issued = await admin.create(name="Shop")
    before = await registry.record(issued.app.id)
    revision = await registry.revision()

    with pytest.raises(InvalidAppError, match=f"^{re.escape(message)}"):
        await admin.update(issued.app.id, change)

    assert await registry.record(issued.app.id) == before
    assert await registry.revision() == revision


async def test_disable_and_enable(admin: AppAdmin, registry: MemoryAppRegistry) -> None:
    issued = await admin.create()
    assert (await admin.disable(issued.app.id)).enabled is False
    stored = await registry.record(issued.app.id)
    assert stored is not None
    assert stored.enabled is False
    assert (await admin.enable(issued.app.id)).enabled is True
    assert (await admin.show(issued.app.id)).enabled is True


async def test_create_disabled(admin: AppAdmin) -> None:
    assert (await admin.create(enabled=False)).app.enabled is False


async def test_rotate_secret_replaces_it_and_gives_the_new_one_once(
    admin: AppAdmin, registry: MemoryAppRegistry
) -> None:
    issued = await admin.create()

    rotated = await admin.rotate_secret(issued.app.id)

    assert rotated.secret != issued.secret
    assert re.fullmatch(r"[0-9a-f]{32}", rotated.secret)
    stored = await registry.record(issued.app.id)
    assert stored is not None
    assert stored.secret == rotated.secret
    assert (stored.id, stored.key) == (issued.app.id, issued.app.key)
    assert rotated.app.secret_hint == "****" + rotated.secret[-4:]


async def test_delete(admin: AppAdmin, registry: MemoryAppRegistry) -> None:
    issued = await admin.create()
    await admin.delete(issued.app.id)
    assert await registry.records() == []


async def test_logs_name_the_app_never_the_secret(
    admin: AppAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ressonance.apps.admin")
    issued = await admin.create()
    rotated = await admin.rotate_secret(issued.app.id)
    await admin.delete(issued.app.id)

    text = caplog.text
    assert f"event=app_created app_id={issued.app.id}" in text
    assert f"event=app_secret_rotated app_id={issued.app.id}" in text
    assert f"event=app_deleted app_id={issued.app.id}" in text
    assert issued.secret not in text
    assert rotated.secret not in text


async def test_when_every_id_is_taken_create_says_to_pass_one(
    registry: MemoryAppRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    await registry.create(AppRecord("1000000", "k", "s"))
    monkeypatch.setattr("ressonance.apps.admin.secrets.randbelow", lambda _: 0)
    with pytest.raises(AppExistsError, match="pass one explicitly"):
        await AppAdmin(registry).create()


def test_hints_and_timestamps() -> None:
    assert secret_hint("0123456789abcdef") == "****cdef"
    assert secret_hint("short") == "****"
    assert timestamp(0) == "1970-01-01T00:00:00Z"
