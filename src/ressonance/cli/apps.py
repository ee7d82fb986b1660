"""`ressonance apps ...`: manage apps from a shell, in tables for people or JSON for scripts.

Verbs: create, list, show, update, disable, enable, rotate-secret, delete, usage, webhooks
(cli/webhooks.py). The app registry is found the way `serve` finds it (`--config` or
`RESSONANCE_CONFIG`, `--apps` or `RESSONANCE_APPS`, the config file's apps URL, else the state
directory), so the command
changes the apps the running nodes serve; every answer names the store it used (its URL
without a password), as `serve`'s banner does, so two different stores are seen at once.
Exit status: 0 done, 1 not found or conflict (or a backend that cannot be reached), 2 bad
usage (a bad flag or value).

A secret is printed only by `create` and `rotate-secret`; every other verb shows a hint.
`--json` prints the same bodies as the admin API, one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, TextIO

import orjson

from ressonance.apps import SHOWN_LIMIT
from ressonance.apps.admin import AppAdmin, AppChange, AppView, InvalidAppError, Issued
from ressonance.apps.base import (
    AppExistsError,
    AppNotFoundError,
    AppRegistry,
    ReadOnlyRegistryError,
)
from ressonance.apps.settings import APP_SETTINGS, parse_setting
from ressonance.apps.sourcing import open_app_registry
from ressonance.cli import examples, webhooks
from ressonance.config import Settings, load_settings
from ressonance.protocol.errors import ConfigError, RessonanceError
from ressonance.protocol.urls import redacted_url
from ressonance.server.admin_api import PREFIX
from ressonance.server.usage_report import MAX_USAGE_DAYS, UsageReport, usage_report
from ressonance.server.webhook_report import WebhookQueryError
from ressonance.state import REDIS_SCHEMES
from ressonance.state.base import UsageStore

OK: Final = 0
FAILED: Final = 1  # not found, conflict, or a backend out of reach
USAGE: Final = 2  # a bad flag or value

RegistryFactory = Callable[[Settings], Awaitable[AppRegistry]]
UsageFactory = Callable[[Settings], AbstractAsyncContextManager[UsageStore | None]]


class CommandError(RessonanceError):
    """What the command prints on stderr before exiting with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UsageUnavailableError(RessonanceError):
    """The shared usage store did not answer."""


async def open_registry(settings: Settings) -> AppRegistry:
    """The registry `serve` reads its apps from (the same settings, the same store)."""
    return await open_app_registry(settings.app_source)


@asynccontextmanager
async def open_usage(settings: Settings) -> AsyncIterator[UsageStore | None]:
    """The shared usage store the nodes write to, or None when usage lives in their memory."""
    if not settings.state_url.startswith(REDIS_SCHEMES):
        yield None
        return
    from redis.exceptions import RedisError

    from ressonance.state.redis import connect
    from ressonance.state.redis_usage import RedisUsageStore

    redis = connect(settings.state_url)
    try:
        yield RedisUsageStore(redis, settings.key_prefix)
    except RedisError as exc:
        raise UsageUnavailableError(str(exc)) from None
    finally:
        await redis.aclose()


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `apps` command and its verbs."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="the TOML config file `serve` uses (default: $RESSONANCE_CONFIG)",
    )
    common.add_argument(
        "--apps",
        metavar="URL",
        help="the app store `serve` uses (sqlite:///..., postgresql://...; default: "
        "$RESSONANCE_APPS, the config file's, else the state directory's)",
    )
    common.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    apps = examples.with_examples(commands, "apps", "create, list, change and delete apps")
    verbs = apps.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[common], help="create an app (prints its secret)")
    create.add_argument("--name", default="", help="a label for people")
    create.add_argument("--plan", default="", help="the plan the app is on (e.g. free)")
    _settings_flags(create)
    create.add_argument("--id", dest="app_id", help="the app id (digits; default: 7 random)")
    create.add_argument("--key", help="the public key (default: 20 random hex characters)")
    create.add_argument("--disabled", action="store_true", help="create it disabled")

    verbs.add_parser("list", parents=[common], help="list every app")
    show = verbs.add_parser("show", parents=[common], help="an app and its effective settings")
    show.add_argument("app_id", metavar="ID")

    update = verbs.add_parser(
        "update", parents=[common], help="change an app's name, plan, settings"
    )
    update.add_argument("app_id", metavar="ID")
    update.add_argument("--name", help="a new label")
    plan = update.add_mutually_exclusive_group()
    plan.add_argument("--plan", help="move the app to this plan")
    plan.add_argument("--no-plan", action="store_true", help="take the app off any plan")
    _settings_flags(update)
    update.add_argument(
        "--unset",
        action="append",
        default=[],
        metavar="NAME",
        help="drop the app's own value of a setting (its plan's or the default applies)",
    )

    for verb, text in (
        ("disable", "refuse the app's connections (4003) and API calls (403)"),
        ("enable", "serve a disabled app again"),
        ("rotate-secret", "replace the app's secret (prints the new one)"),
        ("delete", "delete an app"),
    ):
        verbs.add_parser(verb, parents=[common], help=text).add_argument("app_id", metavar="ID")

    usage = verbs.add_parser("usage", parents=[common], help="messages and peak connections a day")
    usage.add_argument("app_id", metavar="ID")
    usage.add_argument("--days", type=int, default=7, help=f"1 to {MAX_USAGE_DAYS} (default 7)")
    webhooks.add_parser(verbs, common)


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="settings",
        help="an app setting, e.g. max_connections=500 or enable_client_messages=true",
    )


def run(
    args: argparse.Namespace,
    *,
    registry_factory: RegistryFactory | None = None,
    usage_factory: UsageFactory | None = None,
    queue_factory: webhooks.QueueFactory | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one `apps` verb; the exit status."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        settings = load_settings(config_file=args.config, apps=args.apps)
    except ConfigError as exc:
        return _fail(err, f"configuration error: {exc}", USAGE)
    store = _store_line(args, settings)
    try:
        opener = registry_factory or open_registry
        if args.verb == "usage":
            body, text = _usage(args, settings, usage_factory or open_usage)
        elif args.verb == "webhooks":
            queues = queue_factory or webhooks.open_queue
            body, text = asyncio.run(_hooks(args, settings, opener, queues))
        else:
            body, text = asyncio.run(_managed(args, settings, opener))
    except ConfigError as exc:
        return _fail(err, f"configuration error: {exc}", USAGE)
    except CommandError as exc:
        return _fail(err, str(exc), exc.status)
    except (InvalidAppError, WebhookQueryError, ValueError) as exc:
        return _fail(err, str(exc), USAGE)
    except (AppNotFoundError, AppExistsError, ReadOnlyRegistryError) as exc:
        return _fail(err, f"{exc} ({store})", FAILED)
    except OSError as exc:
        return _fail(err, f"cannot reach the app store: {exc} ({store})", FAILED)
    _print(out, body, text, as_json=args.json)
    # Named on every success, so a store other than the server's is seen at once; on stderr
    # with --json, where stdout is one JSON document (the admin API's body).
    line = f"ressonance: {store}" if args.json else store[:1].upper() + store[1:]
    (err if args.json else out).write(line + "\n")
    return OK


def _store_line(args: argparse.Namespace, settings: Settings) -> str:
    if args.verb == "usage":
        return f"usage store: {redacted_url(settings.state_url)}"
    if args.verb == "webhooks":
        return f"webhook queue: {webhooks.queue_name(settings)}, app store: {store_name(settings)}"
    return f"app store: {store_name(settings)}"


def store_name(settings: Settings) -> str:
    """The app store the settings name, as the command and `serve`'s banner show it."""
    if settings.registry_url:
        return redacted_url(settings.registry_url, SHOWN_LIMIT)
    return "RESSONANCE_APP_* variables (read-only)"


Output = tuple[Mapping[str, object], str]


async def _managed(args: argparse.Namespace, settings: Settings, opener: RegistryFactory) -> Output:
    registry = await opener(settings)
    try:
        return await _verb(args, AppAdmin(registry, settings.plan_map))
    finally:
        await registry.close()


async def _hooks(
    args: argparse.Namespace,
    settings: Settings,
    opener: RegistryFactory,
    queues: webhooks.QueueFactory,
) -> Output:
    registry = await opener(settings)
    try:
        return await webhooks.run(args, settings, registry, queues)
    finally:
        await registry.close()


async def _verb(args: argparse.Namespace, admin: AppAdmin) -> Output:
    verb = args.verb
    if verb == "create":
        issued = await admin.create(
            name=args.name,
            plan=args.plan,
            settings=_parse_settings(args.settings),
            enabled=not args.disabled,
            app_id=args.app_id,
            key=args.key,
        )
        return issued.to_json(), _issued_text(issued, "Created")
    if verb == "list":
        views = await admin.all()
        return {"apps": [view.to_json() for view in views]}, _table_of_apps(views)
    if verb == "delete":
        await admin.delete(args.app_id)
        return {"id": args.app_id, "deleted": True}, f"Deleted app {args.app_id}."
    if verb == "rotate-secret":
        rotated = await admin.rotate_secret(args.app_id)
        text = _issued_text(rotated, "New secret for")
        return rotated.to_json(), text + "\nThe old secret no longer works."
    view = await _change(args, admin)
    return view.to_json(), _view_text(view)


async def _change(args: argparse.Namespace, admin: AppAdmin) -> AppView:
    verb = args.verb
    if verb == "disable":
        return await admin.disable(args.app_id)
    if verb == "enable":
        return await admin.enable(args.app_id)
    if verb == "update":
        return await admin.update(args.app_id, _app_change(args))
    return await admin.show(args.app_id)


def _app_change(args: argparse.Namespace) -> AppChange:
    settings: dict[str, object | None] = dict(_parse_settings(args.settings))
    for name in args.unset:
        if name not in APP_SETTINGS:
            raise CommandError(f"--unset {name}: unknown app setting", USAGE)
        settings[name] = None
    plan = "" if args.no_plan else args.plan
    if args.name is None and plan is None and not settings:
        raise CommandError(
            "update: nothing to change; give --name, --plan, --no-plan, --set or --unset", USAGE
        )
    return AppChange(name=args.name, plan=plan, settings=settings)


def _parse_settings(pairs: Sequence[str]) -> dict[str, object]:
    settings: dict[str, object] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise CommandError(f"--set: expected NAME=VALUE, not {pair[:40]!r}", USAGE)
        try:
            settings[name] = parse_setting(name, text, f"--set {name}")
        except ConfigError as exc:
            raise CommandError(str(exc), USAGE) from None
    return settings


def _usage(args: argparse.Namespace, settings: Settings, factory: UsageFactory) -> Output:
    if not 1 <= args.days <= MAX_USAGE_DAYS:
        raise CommandError(f"--days: must be from 1 to {MAX_USAGE_DAYS}", USAGE)
    try:
        report = asyncio.run(_read_usage(factory, settings, args.app_id, args.days))
    except (OSError, UsageUnavailableError) as exc:
        raise CommandError(
            f"cannot read usage from {redacted_url(settings.state_url)}: {exc}", FAILED
        ) from None
    if report is None:
        url = f"http://{settings.host}:{settings.port}{PREFIX}/apps/{args.app_id}/usage"
        state = redacted_url(settings.state_url)
        raise CommandError(
            f"usage is counted in the running node's memory (state {state}), "
            "which this command cannot read. Ask the node's admin API:\n"
            f'  curl -H "Authorization: Bearer $RESSONANCE_ADMIN_TOKEN" "{url}?days={args.days}"'
            '\nor share usage between nodes with state = "redis://..." (docs/topics/scaling.md)',
            FAILED,
        )
    rows = [[d.day, f"{d.messages:,}", f"{d.peak_connections:,}"] for d in report.days]
    text = table(["DAY (UTC)", "MESSAGES", "PEAK CONNECTIONS"], rows, right=frozenset({1, 2}))
    text += f"\nTotal: {report.total_messages:,} messages"
    return report.to_json(), text


async def _read_usage(
    factory: UsageFactory, settings: Settings, app_id: str, count: int
) -> UsageReport | None:
    async with factory(settings) as store:
        if store is None:
            return None
        return await usage_report(store, app_id, now=time.time(), days=count)


# --- output ----------------------------------------------------------------------------------


def _print(out: TextIO, body: Mapping[str, object], text: str, *, as_json: bool) -> None:
    if as_json:
        out.write(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        out.write("\n")
    else:
        out.write(text + "\n")


def _fail(err: TextIO, message: str, status: int) -> int:
    err.write(f"ressonance: {message}\n")
    return status


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()
) -> str:
    """Columns aligned with two spaces between them; `right` columns aligned right."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _table_of_apps(views: Sequence[AppView]) -> str:
    if not views:
        return "No apps. Create one with: ressonance apps create --name NAME"
    rows = [
        [
            v.id,
            v.key,
            v.name or "-",
            v.plan or "-",
            "yes" if v.enabled else "no",
            v.secret_hint,
            str(v.to_json()["created_at"]),
        ]
        for v in views
    ]
    return table(["ID", "KEY", "NAME", "PLAN", "ENABLED", "SECRET", "CREATED"], rows)


def _summary(view: AppView, secret: str | None = None) -> str:
    body = view.to_json()
    return pairs(
        [
            ("app_id", view.id),
            ("key", view.key),
            ("secret", view.secret_hint if secret is None else secret),
            ("name", view.name or "-"),
            ("plan", view.plan or "-"),
            ("enabled", "yes" if view.enabled else "no (connections get 4003, API calls 403)"),
            ("created", str(body["created_at"])),
            ("updated", str(body["updated_at"])),
        ]
    )


def pairs(rows: Sequence[tuple[str, str]]) -> str:
    """`name:  value` lines, the values aligned."""
    width = max(len(name) for name, _ in rows) + 1
    return "\n".join(f"{name + ':':<{width}}  {value}" for name, value in rows)


def _view_text(view: AppView) -> str:
    lines = [_summary(view), ""]
    if view.settings:
        rows = [(name, _value(value)) for name, value in sorted(view.settings.items())]
        lines += ["Own settings (over the plan's):", _indent(pairs(rows))]
    else:
        lines.append("Own settings: none")
    if view.effective is not None:
        rows = [(name, _value(value)) for name, value in sorted(view.effective.items())]
        lines += ["", "Effective settings:", _indent(pairs(rows))]
    return "\n".join(lines)


def _issued_text(issued: Issued, verb: str) -> str:
    view = issued.app
    title = f"{verb} app {view.id}" + (f" ({view.name})" if view.name else "") + ":"
    return "\n".join(
        [
            title,
            _indent(_summary(view, issued.secret)),
            "",
            "The secret is shown only now: store it where your back end keeps secrets",
            "(for example PUSHER_APP_SECRET). `ressonance apps rotate-secret ID` makes a new one.",
        ]
    )


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return json.dumps(value)  # webhooks: as --set takes them
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.split("\n"))
