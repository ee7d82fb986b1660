"""What an operator sees of an app's webhook queue: its dead letters and delivery logs.

Shared by the admin API and `ressonance apps webhooks`, so both answer the same JSON. Rules:

- Reads and replays through the `WebhookQueue` seam only; nothing here knows the store.
- An endpoint is named by its index in the app's `webhooks` list (from 0) or by its URL;
  answers name it by both, never with its headers (they may hold credentials).
- A dead letter's `event` is the event object as it will be sent again (Pusher's format).
- Every bad value raises `WebhookQueryError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson

from ressonance.protocol.errors import RessonanceError
from ressonance.protocol.webhooks import WebhookEndpoint, lane_endpoint, lane_id
from ressonance.state.base import DeadLetter, DeliveryAttempt, WebhookQueue

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
_PAGE: Final = 1000


class WebhookQueryError(RessonanceError):
    """A bad limit, endpoint or list of ids."""


def parse_limit(raw: str | None) -> int:
    """The `limit` query value: 1 to MAX_LIMIT, DEFAULT_LIMIT when absent."""
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_LIMIT:
        raise WebhookQueryError(f"limit: must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def select_endpoints(
    endpoints: Sequence[WebhookEndpoint], selector: str | None
) -> list[tuple[int, WebhookEndpoint]]:
    """The endpoints `selector` names (an index or a URL), every one when None."""
    indexed = list(enumerate(endpoints))
    if selector is None:
        return indexed
    for index, endpoint in indexed:
        if selector == endpoint.url or (selector.isdigit() and int(selector) == index):
            return [(index, endpoint)]
    raise WebhookQueryError(
        f"endpoint: no endpoint {selector[:200]!r} (the app has {len(endpoints)}: "
        f"give an index from 0 or a URL)"
    )


def dead_letter_json(dead: DeadLetter, endpoints: Sequence[WebhookEndpoint]) -> dict[str, object]:
    """A dead letter as the admin API and `--json` show it."""
    endpoint_id = lane_endpoint(dead.lane)
    url = next((e.url for e in endpoints if e.id == endpoint_id), None)
    return {
        "id": dead.id,
        "endpoint": url,  # None: no longer one of the app's endpoints
        "channel": dead.channel,
        "event": orjson.loads(dead.event),
        "produced_ms": dead.produced_ms,
        "failed_ms": dead.failed_ms,
        "reason": dead.reason,
    }


def attempt_json(attempt: DeliveryAttempt) -> dict[str, object]:
    """One request of a delivery log."""
    return {
        "at_ms": attempt.at_ms,
        "status": attempt.status,
        "latency_ms": attempt.latency_ms,
        "events": attempt.events,
        "error": attempt.error,
    }


async def dead_letters(
    queue: WebhookQueue,
    app_id: str,
    endpoints: Sequence[WebhookEndpoint],
    *,
    after: str = "",
    limit: int = DEFAULT_LIMIT,
) -> dict[str, object]:
    """The app's dead letters after id `after`, oldest first; `next` pages on (None: no more)."""
    found = await queue.dead_letters(app_id, after, limit)
    return {
        "dead_letters": [dead_letter_json(d, endpoints) for d in found],
        "next": found[-1].id if len(found) == limit else None,
    }


async def replay(queue: WebhookQueue, app_id: str, ids: Sequence[str] | None) -> int:
    """Put these dead letters (every one when None) back in their lanes; how many."""
    if ids is None:
        ids, after = [], ""
        while page := await queue.dead_letters(app_id, after, _PAGE):
            ids.extend(d.id for d in page)
            after = page[-1].id
    return await queue.replay(app_id, ids) if ids else 0


async def deliveries(
    queue: WebhookQueue,
    app_id: str,
    selected: Sequence[tuple[int, WebhookEndpoint]],
    limit: int = DEFAULT_LIMIT,
) -> dict[str, object]:
    """The recent requests to each selected endpoint, newest first."""
    logs = []
    for index, endpoint in selected:
        attempts = await queue.delivery_log(lane_id(app_id, endpoint), limit)
        logs.append(
            {
                "index": index,
                "url": endpoint.url,
                "attempts": [attempt_json(a) for a in attempts],
            }
        )
    return {"endpoints": logs}
