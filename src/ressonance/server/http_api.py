"""The Pusher HTTP API (reference §5), independent of the web library.

The transport hands over an `ApiRequest` (method, path, decoded query, body bounded in size)
and writes back the `ApiResponse`. Every request is authenticated (§5.6) before its body is
parsed; every failure is a JSON body `{"error": "...", "code": status}`. Every answer is
counted by route name (never the raw path, which carries ids) and status; every published
event's time to its local writes goes to the latency histogram.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ressonance.backbone.base import BackboneUnavailableError
from ressonance.protocol import rest
from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.errors import ApiError
from ressonance.protocol.signing import verify_request
from ressonance.server.node import Node
from ressonance.state.base import Decision, PresenceStore

log = logging.getLogger(__name__)

JsonBody = dict[str, object]


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: JsonBody
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[App, ApiRequest, re.Match[str]], Awaitable[JsonBody]]
UNKNOWN_ENDPOINT: Final = "unknown"

_APP: Final = r"/apps/(?P<app_id>[^/]+)"
_CHANNEL: Final = r"/channels/(?P<channel>[^/]+)"


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

    def __init__(self, node: Node) -> None:
        self.node = node
        terminate = r"/users/(?P<user>[^/]+)/terminate_connections"
        # (route name for metrics, method, path pattern, handler)
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = [
            ("events", "POST", re.compile(_APP + r"/events"), self._events),
            ("batch_events", "POST", re.compile(_APP + r"/batch_events"), self._batch_events),
            ("channels", "GET", re.compile(_APP + r"/channels"), self._channels),
            ("channel", "GET", re.compile(_APP + _CHANNEL), self._channel),
            ("channel_users", "GET", re.compile(_APP + _CHANNEL + r"/users"), self._users),
            ("terminate_connections", "POST", re.compile(_APP + terminate), self._terminate),
            # The PyPI SDK signs and requests this path without /apps/{id} (reference §5.5).
            ("terminate_connections", "POST", re.compile(terminate), self._terminate),
        ]

    def endpoint(self, path: str) -> str:
        """The route name of `path` (whatever the method), for metrics labels."""
        for name, _, pattern, _ in self._routes:
            if pattern.fullmatch(path):
                return name
        return UNKNOWN_ENDPOINT

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer `request`, and count the answer."""
        response = await self._answer(request)
        self.node.metrics.http_request(self.endpoint(request.path), response.status)
        return response

    def refuse(self, request: ApiRequest, error: ApiError) -> ApiResponse:
        """Answer `request` with `error` without handling it (a body over the size limit)."""
        self.node.metrics.http_request(self.endpoint(request.path), error.status)
        return error_response(error)

    async def _answer(self, request: ApiRequest) -> ApiResponse:
        try:
            handler, match = self._route(request)
            app = await self._authenticate(request, match)
            return ApiResponse(200, await handler(app, request, match))
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
            if self.node.ready:
                log.exception("event=api_failed path=%s", request.path[:100])
                return error_response(ApiError(500, "Internal server error"))
            log.warning("event=api_unavailable path=%s error=%r", request.path[:100], exc)
            return error_response(ApiError(503, "A backend is unavailable; try again"))

    def _route(self, request: ApiRequest) -> tuple[Handler, re.Match[str]]:
        allowed = []
        for _, method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method == request.method:
                return handler, match
            allowed.append(method)
        if allowed:
            raise MethodNotAllowedError(request.method, allowed)
        raise ApiError(404, f"No HTTP API endpoint at {request.path[:100]}")

    async def _authenticate(self, request: ApiRequest, match: re.Match[str]) -> App:
        groups = match.groupdict()
        if "app_id" in groups:
            app = await self.node.apps.find_by_id(groups["app_id"])
            if app is None:
                raise ApiError(404, f"Unknown app id {groups['app_id'][:40]}")
        else:
            app = await self.node.apps.find_by_key(request.query.get("auth_key", ""))
            if app is None:
                raise ApiError(401, "Unknown auth_key")
        verify_request(
            key=app.key,
            secret=app.secret,
            method=request.method,
            path=request.path,
            params=request.query,
            body=request.body,
            now=self.node.clock(),
        )
        if not app.enabled:
            raise ApiError(403, "App is disabled")
        return app

    async def _events(self, app: App, request: ApiRequest, _: re.Match[str]) -> JsonBody:
        trigger = rest.parse_trigger(request.body, app)
        await self._admit_events(app, len(trigger.channels))
        await self._publish(app, trigger)
        if not trigger.info:
            return {}
        return {
            "channels": await channel_attributes(
                self.node.presence, app, trigger.channels, trigger.info
            )
        }

    async def _batch_events(self, app: App, request: ApiRequest, _: re.Match[str]) -> JsonBody:
        triggers = rest.parse_batch(request.body, app)
        await self._admit_events(app, len(triggers))
        for trigger in triggers:
            await self._publish(app, trigger)
        if not any(trigger.info for trigger in triggers):
            return {}
        batch = []
        for trigger in triggers:
            attributes = await channel_attributes(
                self.node.presence, app, trigger.channels, trigger.info
            )
            batch.append(attributes[trigger.channels[0]])
        return {"batch": batch}

    async def _admit_events(self, app: App, events: int) -> None:
        """The app's quotas for publishing `events` (one per channel): 403 once the day's
        messages are used up, 429 past its events per second (a refusal spends nothing)."""
        quotas = self.node.quotas
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
            refusal = await self.node.quotas.read_request(app)
        except Exception as exc:
            raise _quota_unavailable(exc) from None
        if refusal is not None:
            raise TooManyRequestsError("max_read_requests_per_sec", refusal)

    async def _publish(self, app: App, trigger: rest.Trigger) -> None:
        started = self.node.metrics.timer()
        await self.node.publish(app, trigger)
        self.node.metrics.published(app.id, started)

    async def _channels(self, app: App, request: ApiRequest, _: re.Match[str]) -> JsonBody:
        prefix, info = rest.parse_channels_query(request.query)
        await self._admit_read(app)
        occupied = await self.node.presence.channels(app.id, prefix)
        return {
            "channels": await channel_attributes(self.node.presence, app, sorted(occupied), info)
        }

    async def _channel(self, app: App, request: ApiRequest, match: re.Match[str]) -> JsonBody:
        name = match["channel"]
        info = rest.parse_channel_query(name, request.query, app)
        await self._admit_read(app)
        count = await self.node.presence.subscription_count(app.id, name)
        body: JsonBody = {"occupied": count > 0}
        body.update((await channel_attributes(self.node.presence, app, [name], info))[name])
        if "cache" in info:
            cached = await self.node.cache.get(app.id, name)
            body["cache"] = None if cached is None else {"data": cached.data, "ttl": cached.ttl}
        return body

    async def _users(self, app: App, _: ApiRequest, match: re.Match[str]) -> JsonBody:
        name = match["channel"]
        rest.require_presence(name, app)
        await self._admit_read(app)
        members = await self.node.presence.members(app.id, name)
        return {"users": [{"id": user_id} for user_id in members]}

    async def _terminate(self, app: App, _: ApiRequest, match: re.Match[str]) -> JsonBody:
        user_id = match["user"]
        rest.validate_user_id(user_id)
        await self.node.terminate_user(app, user_id)
        return {}


def _quota_unavailable(exc: Exception) -> ApiError:
    """A quota that cannot be checked (the shared store is down) answers 503, not 500.

    A plain try/except at each call, not a context manager: an async context manager costs
    ~5 % of a publish on the front door's path (a generator and two awaits per request).
    """
    log.warning("event=quota_unavailable error=%r", exc)
    return ApiError(503, "Quotas cannot be checked right now; try again")


async def channel_attributes(
    presence: PresenceStore, app: App, channels: Iterable[str], info: frozenset[str]
) -> dict[str, dict[str, object]]:
    """The `info` attributes of each channel (user_count on presence channels only, §5.1)."""
    result: dict[str, dict[str, object]] = {}
    for name in channels:
        attributes: dict[str, object] = {}
        is_presence = classify(name).is_presence
        if "user_count" in info and is_presence:
            attributes["user_count"] = await presence.user_count(app.id, name)
        if "subscription_count" in info and not is_presence:
            attributes["subscription_count"] = await presence.subscription_count(app.id, name)
        result[name] = attributes
    return result
