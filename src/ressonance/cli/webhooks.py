"""`ressonance apps webhooks ...`: an app's webhook dead letters, their replay, delivery logs.

Verbs: dead-letters, replay, deliveries. The queue is opened with the settings `serve` uses:
with `state = "redis://..."` the cluster's queue, else the single node's SQLite file in the
state directory (which a running node and this command share). The app's endpoints come
from the app registry, found as the other `apps` verbs find it. Answers are the admin API's
bodies (`--json`) or tables, and name the queue they read. Nothing here is printed of an
endpoint's headers.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from ressonance.apps.admin import AppAdmin
from ressonance.apps.base import AppRegistry
from ressonance.config import Settings
from ressonance.protocol.urls import redacted_url
from ressonance.server.webhook_report import (
    DEFAULT_LIMIT,
    dead_letters,
    deliveries,
    replay,
    select_endpoints,
)
from ressonance.state import REDIS_SCHEMES, WEBHOOKS_FILE, open_state
from ressonance.state.base import WebhookQueue

QueueFactory = Callable[[Settings], AbstractAsyncContextManager[WebhookQueue]]
Output = tuple[Mapping[str, object], str]


def queue_name(settings: Settings) -> str:
    """The queue the command reads, as it names it."""
    if settings.state_url.startswith(REDIS_SCHEMES):
        return redacted_url(settings.state_url)
    return str(Path(settings.state_dir) / WEBHOOKS_FILE)


@asynccontextmanager
async def open_queue(settings: Settings) -> AsyncIterator[WebhookQueue]:
    """The webhook queue the nodes of these settings use."""
    state = open_state(
        settings.state_url,
        node_id="ressonance-apps",
        clock=time.time,
        prefix=settings.key_prefix,
        node_ttl=settings.node_ttl,
        state_dir=Path(settings.state_dir) if settings.state_dir else None,
    )
    try:
        await state.webhooks.open()
        yield state.webhooks
    finally:
        await state.close()


def add_parser(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The `webhooks` verb of `apps` and its own verbs."""
    parents = [common]
    hooks = verbs.add_parser(
        "webhooks", help="an app's webhook dead letters, their replay, delivery logs"
    )
    actions = hooks.add_subparsers(dest="hooks_verb", required=True, metavar="ACTION")
    listed = actions.add_parser("dead-letters", parents=parents, help="list the dead letters")
    listed.add_argument("app_id", metavar="ID")
    listed.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="at most this many")
    again = actions.add_parser("replay", parents=parents, help="send dead letters again")
    again.add_argument("app_id", metavar="ID")
    again.add_argument("ids", nargs="*", metavar="DEAD_LETTER_ID")
    again.add_argument("--all", action="store_true", help="every dead letter of the app")
    log = actions.add_parser("deliveries", parents=parents, help="recent requests per endpoint")
    log.add_argument("app_id", metavar="ID")
    log.add_argument("--endpoint", metavar="N", help="one endpoint: its index (from 0) or URL")
    log.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="at most this many")


async def run(
    args: argparse.Namespace, settings: Settings, registry: AppRegistry, opener: QueueFactory
) -> Output:
    """One `webhooks` action; raises WebhookQueryError, AppNotFoundError, ValueError."""
    app = await AppAdmin(registry, settings.plan_map).resolved(args.app_id)
    if args.hooks_verb == "replay" and bool(args.ids) == bool(args.all):
        raise ValueError("replay: give dead letter ids or --all (one of them)")
    async with opener(settings) as queue:
        if args.hooks_verb == "dead-letters":
            body = await dead_letters(queue, app.id, app.webhooks, limit=args.limit)
            return body, _dead_letters_text(body)
        if args.hooks_verb == "replay":
            count = await replay(queue, app.id, None if args.all else args.ids)
            return {"replayed": count}, f"Replayed {count} dead letter(s) of app {app.id}."
        selected = select_endpoints(app.webhooks, args.endpoint)
        body = await deliveries(queue, app.id, selected, args.limit)
        return body, _deliveries_text(body)


def _dead_letters_text(body: Mapping[str, object]) -> str:
    from ressonance.cli.apps import table

    rows = [
        [str(d["id"]), _when(d["failed_ms"]), str(d["channel"]), str(d["endpoint"]), d["reason"]]
        for d in body["dead_letters"]  # type: ignore[attr-defined]
    ]
    if not rows:
        return "No dead letters."
    return table(["ID", "FAILED (UTC)", "CHANNEL", "ENDPOINT", "REASON"], rows)


def _deliveries_text(body: Mapping[str, object]) -> str:
    from ressonance.cli.apps import table

    parts = []
    for log in body["endpoints"]:  # type: ignore[attr-defined]
        rows = [
            [
                _when(a["at_ms"]),
                str(a["status"]),
                f"{a['latency_ms']} ms",
                str(a["events"]),
                a["error"],
            ]
            for a in log["attempts"]
        ]
        heading = f"Endpoint {log['index']}: {log['url']}"
        lines = (
            table(["AT (UTC)", "STATUS", "LATENCY", "EVENTS", "ERROR"], rows)
            if rows
            else "No requests yet."
        )
        parts.append(f"{heading}\n{lines}")
    return "\n\n".join(parts) or "The app has no webhook endpoints."


def _when(ms: object) -> str:
    stamp = datetime.fromtimestamp(int(str(ms)) / 1000, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S")
