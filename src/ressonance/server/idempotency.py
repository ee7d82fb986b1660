"""Idempotent publish: an `Idempotency-Key` makes a repeated publish answer without resending.

The HTTP API's `POST /apps/{id}/events` and `/batch_events` take the key in the
`Idempotency-Key` header (the IETF httpapi draft's name) or, for SDKs that cannot set
headers, in the body's `idempotency_key` (the header wins). Rules:
1. The key is claimed in the shared `IdempotencyStore` before anything is published: of
   requests with one key on any nodes, exactly one publishes; it records its answer, kept
   for the app's `idempotency_ttl` (24 h by default).
2. A repeat with the same request (method, endpoint and body: its fingerprint) gets the
   first answer and publishes nothing. One that arrives while the first is still being
   answered waits for it, up to `WAIT_SECONDS`, then gets a 409 to retry. A repeat with
   another request is a 422.
3. A publish that fails (quota, backbone down) releases the key, so a retry can publish. A
   claim whose node dies lapses after `PENDING_TTL` seconds. If recording the answer fails
   after the publish, the answer is still given (the event was sent); the key then lapses
   like a dead node's, and a repeat after that would send again (logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple

import orjson

from ressonance.protocol import rest
from ressonance.protocol.app import App
from ressonance.protocol.errors import ApiError
from ressonance.server.metrics import Metrics
from ressonance.state.base import Claim, IdempotencyStore

log = logging.getLogger(__name__)

PENDING_TTL: Final = 60  # seconds a claim holds the key before it is answered
WAIT_SECONDS: Final = 10.0
POLL_SECONDS: Final = 0.05

Answer = dict[str, object]


class KeyedRequest(NamedTuple):
    """A publish request as far as its idempotency goes: the `Idempotency-Key` header (None
    without one) and what makes two requests the same one."""

    header: str | None
    method: str
    path: str
    body: bytes


class IdempotentPublishes:
    """Answers a keyed publish once per key, cluster-wide (see the module docstring)."""

    def __init__(self, *, store: IdempotencyStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    async def once(
        self,
        app: App,
        request: KeyedRequest,
        body_key: str | None,
        answer: Callable[[], Awaitable[Answer]],
    ) -> Answer:
        """`answer()`, once per idempotency key (the header's, else `body_key`); with no key
        at all, every time."""
        key = rest.idempotency_key(request.header) or body_key
        if key is None:
            return await answer()
        return await self._once(app, key, request, answer)

    async def _once(
        self, app: App, key: str, request: KeyedRequest, answer: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """`answer()` if `key` is new, else the answer it was first given."""
        method, path, body = request[1:]
        fingerprint = hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body))
        digest = fingerprint.hexdigest()
        waited = 0.0
        while True:
            claim = await self._claim(app, key, digest)
            if claim.owned:
                break
            if claim.fingerprint != digest:
                raise ApiError(422, "This Idempotency-Key was used with a different request")
            if claim.answer is not None:
                self.metrics.app(app.id).idempotent_replays += 1
                replayed: Answer = orjson.loads(claim.answer)
                return replayed
            if waited >= WAIT_SECONDS:
                raise ApiError(409, "A request with this Idempotency-Key is still being answered")
            await asyncio.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
        return await self._answer_owned(app, key, answer)

    async def _claim(self, app: App, key: str, fingerprint: str) -> Claim:
        try:
            return await self.store.claim(app.id, key, fingerprint, PENDING_TTL)
        except Exception as exc:
            log.warning("event=idempotency_unavailable error=%r", exc)
            raise ApiError(503, "Idempotency keys cannot be checked right now; try again") from None

    async def _answer_owned(
        self, app: App, key: str, answer: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        try:
            body = await answer()
        except BaseException:
            try:
                await self.store.release(app.id, key)
            except Exception as exc:  # the claim then lapses after PENDING_TTL
                log.warning("event=idempotency_release_failed error=%r", exc)
            raise
        try:
            await self.store.complete(app.id, key, orjson.dumps(body).decode(), app.idempotency_ttl)
        except Exception as exc:
            log.warning("event=idempotency_complete_failed app_id=%s error=%r", app.id, exc)
        return body
