"""The Pusher HTTP API (reference §5), independent of the web library.

The front door (publishes) and the transport (the rest) hand over an `ApiRequest` (method,
path, decoded query, body bounded in size, and the path's route from `server.routes`,
resolved once by whoever read the request) and write back the `ApiResponse`. Rules:

- The route picks the handler; its endpoint's methods answer a 405 with `Allow`, a path
  with no HTTP API endpoint a 404. The path is never matched again here.
- Every request is authenticated (§5.6) before its body is parsed; every failure is a JSON
  body `{"error": "...", "code": status}`.
- Every answer is counted by the route's endpoint name (never the raw path, which carries
  ids) and status; every published event's time to its local writes goes to the latency
  histogram.
- A publish may carry an idempotency key (`server.idempotency`), and ask with
  `info=serial` for the serial each channel that keeps history gave the event (an
  attribute of the channel, where `subscription_count` goes); `GET
  .../channels/{name}/history` reads that history.
- Every refusal (a 4xx) is one INFO line with the app id and the reason, bounded by the
  node's `RefusalLog`; with debug logs on, every other answer is one DEBUG line (method,
  endpoint, app id, status). Never the signature, the body or the query.
- It is given the parts of the node it uses (stores, quotas, metrics, the publish entry);
  it never imports the node (import-linter checks it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ressonance.apps.base import AppStore
from ressonance.backbone.base import BackboneUnavailableError
from ressonance.protocol import rest
from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.errors import ApiError
from ressonance.protocol.signing import verify_request
from ressonance.server import routes
from ressonance.server.history import ChannelHistory
from ressonance.server.idempotency import IdempotentPublishes, KeyedRequest
from ressonance.server.metrics import Metrics
from ressonance.server.quotas import Quotas
from ressonance.server.readiness import Readiness
from ressonance.server.refusal_log import RefusalLog, app_label, quoted
from ressonance.server.routes import Area, Endpoint, Route
from ressonance.server.users import Users
from ressonance.state.base import CacheStore, Decision, PresenceStore

log = logging.getLogger(__name__)

JsonBody = dict[str, object]


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, and
# one of each is built per publish. Neither is changed once built.
@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes
    route: Route  # of `path`, resolved by whoever read the request
    idempotency_key: str | None = None  # the Idempotency-Key header, as sent

    @classmethod
    def at(
        cls,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        idempotency_key: str | None = None,
    ) -> ApiRequest:
        """A request to `path`, routed here (for callers that have not routed it)."""
        return cls(method, path, query, body, routes.resolve(path), idempotency_key)


@dataclass(slots=True)
class ApiResponse:
    status: int
    body: JsonBody
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[App, ApiRequest], Awaitable[JsonBody]]
# The node's publish: the serials the channels that keep history gave the event.
Publish = Callable[[App, rest.Trigger], Awaitable[dict[str, int]]]
UNKNOWN_ENDPOINT: Final = "unknown"


class MethodNotAllowedError(ApiError):
    """405, naming the methods the path takes (sent in an `Allow` header too)."""

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(405, f"Method {method} is not allowed here; use {allowed[0]}")
        self.allowed = allowed


class TooManyRequestsError(ApiError):
    """429 from an app-wide rate limit, with the headers Soketi and GitHub send."""

    def __init__(self, setting: str, decision: Decision) -> None:
        super().__init__(
            429, f"Too many requests: the app allows {decision.limit} a second ({setting})"
        )
        self.headers = {
            "Retry-After": str(max(1, math.ceil(decision.retry_after))),
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
        }


def error_response(error: ApiError) -> ApiResponse:
    return ApiResponse(error.status, {"error": error.message, "code": error.status})


class HttpApi:
    """Routes, authenticates and answers HTTP API requests for a node."""

    def __init__(
        self,
        *,
        apps: AppStore,
        presence: PresenceStore,
        cache: CacheStore,
        quotas: Quotas,
        users: Users,
        publish: Publish,
        metrics: Metrics,
        readiness: Readiness,
        history: ChannelHistory,
        idempotency: IdempotentPublishes,
        clock: Callable[[], float],
        refusals: RefusalLog | None = None,
    ) -> None:
        """`publish` sends one event to each of its channels (`Node.publish`); `users` closes
        a user's connections for terminate; `readiness` tells a failure (500) from a backend
        outage (503); `refusals` logs the 4xx answers (the node's; one of its own if None)."""
        self.apps = apps
        self.presence = presence
        self.cache = cache
        self.quotas = quotas
        self.users = users
        self.publish = publish
        self.metrics = metrics
        self.readiness = readiness
        self.history = history
        self.idempotency = idempotency
        self.clock = clock
        self.refusals = RefusalLog(clock) if refusals is None else refusals
        self._handlers: dict[Endpoint | None, Handler] = {
            routes.EVENTS: self._events,
            routes.BATCH_EVENTS: self._batch_events,
            routes.CHANNELS: self._channels,
            routes.CHANNEL: self._channel,
            routes.CHANNEL_USERS: self._users,
            routes.CHANNEL_HISTORY: self._history,
            routes.TERMINATE: self._terminate,
            routes.TERMINATE_BY_KEY: self._terminate,
        }

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer `request`, and count the answer."""
        response = await self._answer(request)
        endpoint = endpoint_name(request.route)
        self.metrics.http_request(endpoint, response.status)
        self._log(request, endpoint, response)
        return response

    def refuse(self, request: ApiRequest, error: ApiError) -> ApiResponse:
        """Answer `request` with `error` without handling it (a body over the size limit)."""
        endpoint = endpoint_name(request.route)
        self.metrics.http_request(endpoint, error.status)
        response = error_response(error)
        self._log(request, endpoint, response)
        return response

    def _log(self, request: ApiRequest, endpoint: str, response: ApiResponse) -> None:
        """A refusal's line, or with debug on an answer's; nothing is computed otherwise."""
        if 400 <= response.status < 500:
            self.refusals.refused(
                "api",
                response.status,
                app_label(request.route.params.get("app_id")),
                str(response.body.get("error", "")),
                method=quoted(request.method),
                endpoint=endpoint,
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "event=api_call method=%r endpoint=%s app_id=%s status=%d",
                request.method[:20],
                endpoint,
                app_label(request.route.params.get("app_id")) or "-",
                response.status,
            )

    async def _answer(self, request: ApiRequest) -> ApiResponse:
        try:
            handler = self._handler(request)
            app = await self._authenticate(request)
            return ApiResponse(200, await handler(app, request))
        except MethodNotAllowedError as error:
            response = error_response(error)
            return ApiResponse(response.status, response.body, {"Allow": ", ".join(error.allowed)})
        except TooManyRequestsError as error:
            return ApiResponse(error.status, error_response(error).body, error.headers)
        except ApiError as error:
            return error_response(error)
        except BackboneUnavailableError:
            # Never 200 for a publish that went nowhere: the client can retry (503).
            return error_response(ApiError(503, "Backbone unavailable; the event was not sent"))
        except Exception as exc:
            if self.readiness.ready:
                log.exception("event=api_failed path=%s", request.path[:100])
                return error_response(ApiError(500, "Internal server error"))
            log.warning("event=api_unavailable path=%s error=%r", request.path[:100], exc)
            return error_response(ApiError(503, "A backend is unavailable; try again"))

    def _handler(self, request: ApiRequest) -> Handler:
        endpoint = request.route.endpoint
        handler = self._handlers.get(endpoint)  # None for a path of another area, too
        if endpoint is None or handler is None:
            raise ApiError(404, f"No HTTP API endpoint at {request.path[:100]}")
        if request.method not in endpoint.methods:
            raise MethodNotAllowedError(request.method, list(endpoint.methods))
        return handler

    async def _authenticate(self, request: ApiRequest) -> App:
        app_id = request.route.params.get("app_id")
        if app_id is not None:
            app = await self.apps.find_by_id(app_id)
            if app is None:
                raise ApiError(404, f"Unknown app id {app_id[:40]}")
        else:
            app = await self.apps.find_by_key(request.query.get("auth_key", ""))
            if app is None:
                raise ApiError(401, "Unknown auth_key")
        verify_request(
            key=app.key,
            secret=app.secret,
            method=request.method,
            path=request.path,
            params=request.query,
            body=request.body,
            now=self.clock(),
        )
        if not app.enabled:
            raise ApiError(403, "App is disabled")
        return app

    async def _events(self, app: App, request: ApiRequest) -> JsonBody:
        trigger = rest.parse_trigger(request.body, app)

        async def send() -> JsonBody:
            await self._admit_events(app, len(trigger.channels))
            serials = await self._publish_timed(app, trigger)
            if not trigger.info:
                return {}
            attributes = await channel_attributes(
                self.presence, app, trigger.channels, trigger.info, serials
            )
            return {"channels": attributes}

        return await self.idempotency.once(app, request_of(request), trigger.idempotency_key, send)

    async def _batch_events(self, app: App, request: ApiRequest) -> JsonBody:
        triggers = rest.parse_batch(request.body, app)

        async def send() -> JsonBody:
            await self._admit_events(app, len(triggers))
            serials = [await self._publish_timed(app, trigger) for trigger in triggers]
            if not any(trigger.info for trigger in triggers):
                return {}
            batch = []
            for trigger, given in zip(triggers, serials, strict=True):
                attributes = await channel_attributes(
                    self.presence, app, trigger.channels, trigger.info, given
                )
                batch.append(attributes[trigger.channels[0]])
            return {"batch": batch}

        key = triggers[0].idempotency_key
        return await self.idempotency.once(app, request_of(request), key, send)

    async def _admit_events(self, app: App, events: int) -> None:
        """The app's quotas for publishing `events` (one per channel): 403 once the day's
        messages are used up, 429 past its events per second (a refusal spends nothing)."""
        quotas = self.quotas
        try:
            over = await quotas.over_daily_quota(app)
            refusal = None if over else await quotas.backend_events(app, events)
        except Exception as exc:
            raise _quota_unavailable(exc) from None
        if over:
            raise ApiError(
                403,
                "Over the app's daily message quota "
                f"(max_messages_per_day = {app.max_messages_per_day}); it renews at 00:00 UTC",
            )
        if refusal is not None:
            raise TooManyRequestsError("max_backend_events_per_sec", refusal)

    async def _admit_read(self, app: App) -> None:
        try:
            refusal = await self.quotas.read_request(app)
        except Exception as exc:
            raise _quota_unavailable(exc) from None
        if refusal is not None:
            raise TooManyRequestsError("max_read_requests_per_sec", refusal)

    async def _publish_timed(self, app: App, trigger: rest.Trigger) -> dict[str, int]:
        started = self.metrics.timer()
        serials = await self.publish(app, trigger)
        self.metrics.published(app.id, started)
        return serials

    async def _channels(self, app: App, request: ApiRequest) -> JsonBody:
        prefix, info = rest.parse_channels_query(request.query)
        await self._admit_read(app)
        occupied = await self.presence.channels(app.id, prefix)
        return {"channels": await channel_attributes(self.presence, app, sorted(occupied), info)}

    async def _channel(self, app: App, request: ApiRequest) -> JsonBody:
        name = request.route.params["channel"]
        info = rest.parse_channel_query(name, request.query, app)
        await self._admit_read(app)
        count = await self.presence.subscription_count(app.id, name)
        body: JsonBody = {"occupied": count > 0}
        body.update((await channel_attributes(self.presence, app, [name], info))[name])
        if "cache" in info:
            cached = await self.cache.get(app.id, name)
            body["cache"] = None if cached is None else {"data": cached.data, "ttl": cached.ttl}
        return body

    async def _users(self, app: App, request: ApiRequest) -> JsonBody:
        name = request.route.params["channel"]
        rest.require_presence(name, app)
        await self._admit_read(app)
        members = await self.presence.members(app.id, name)
        return {"users": [{"id": user_id} for user_id in members]}

    async def _history(self, app: App, request: ApiRequest) -> JsonBody:
        name = request.route.params["channel"]
        query = rest.parse_history_query(name, request.query, app)
        await self._admit_read(app)
        return await self.history.answer(app, name, query)

    async def _terminate(self, app: App, request: ApiRequest) -> JsonBody:
        user_id = request.route.params["user"]
        rest.validate_user_id(user_id)
        await self.users.terminate(app, user_id)
        return {}


def request_of(request: ApiRequest) -> KeyedRequest:
    """What an idempotency key is checked against: the header's key and the request."""
    return KeyedRequest(request.idempotency_key, request.method, request.path, request.body)


def endpoint_name(route: Route) -> str:
    """The metrics label of a request routed to `route`: its HTTP API endpoint's name."""
    endpoint = route.endpoint
    return (
        endpoint.name if route.area is Area.HTTP_API and endpoint is not None else UNKNOWN_ENDPOINT
    )


def _quota_unavailable(exc: Exception) -> ApiError:
    """A quota that cannot be checked (the shared store is down) answers 503, not 500.

    A plain try/except at each call, not a context manager: an async context manager costs
    ~5 % of a publish on the front door's path (a generator and two awaits per request).
    """
    log.warning("event=quota_unavailable error=%r", exc)
    return ApiError(503, "Quotas cannot be checked right now; try again")


async def channel_attributes(
    presence: PresenceStore,
    app: App,
    channels: Iterable[str],
    info: frozenset[str],
    serials: Mapping[str, int] | None = None,
) -> dict[str, dict[str, object]]:
    """The `info` attributes of each channel (user_count on presence channels only, §5.1;
    `serial`, of a publish, on channels that keep history)."""
    result: dict[str, dict[str, object]] = {}
    for name in channels:
        attributes: dict[str, object] = {}
        if "serial" in info and serials and name in serials:
            attributes["serial"] = serials[name]
        is_presence = classify(name).is_presence
        if "user_count" in info and is_presence:
            attributes["user_count"] = await presence.user_count(app.id, name)
        if "subscription_count" in info and not is_presence:
            attributes["subscription_count"] = await presence.subscription_count(app.id, name)
        result[name] = attributes
    return result
