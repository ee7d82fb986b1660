"""The admin HTTP API under /admin/v1: apps, their usage and webhook queues, without a web library.

The transport hands over an `AdminRequest` (method, path, query, the Authorization header, a
body bounded in size, and the path's route from `server.routes`, resolved once by the
transport) and writes back the `ApiResponse`. Rules:

- No token configured: every path answers 404 (the API does not exist).
- The route picks the operation: the endpoint's methods answer a 405 with `Allow`, a path
  with no admin endpoint a 404. The path is never matched again here.
- Every route but `GET openapi.json` needs `Authorization: Bearer <token>`, compared in
  constant time; otherwise 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
- Bodies are refused past `MAX_BODY_BYTES` before they are parsed; JSON is checked field by
  field and a bad one is named. Every failure is `{"error": "...", "code": status}`.
- The operations and admin_openapi.json describe the same API; a test holds them together.
- Secrets appear only in the bodies of create and rotate-secret; never in logs.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

import orjson

from ressonance.apps.admin import AppAdmin, AppChange, InvalidAppError
from ressonance.apps.base import AppExistsError, AppNotFoundError, ReadOnlyRegistryError
from ressonance.protocol.errors import ApiError
from ressonance.server import routes
from ressonance.server.http_api import ApiResponse, JsonBody, MethodNotAllowedError, error_response
from ressonance.server.routes import Area, Endpoint, Route
from ressonance.server.usage_report import DEFAULT_USAGE_DAYS, MAX_USAGE_DAYS, usage_report
from ressonance.server.webhook_report import (
    WebhookQueryError,
    dead_letters as dead_letters_of,
    deliveries,
    parse_limit,
    replay,
    select_endpoints,
)
from ressonance.state.base import UsageStore, WebhookQueue

log = logging.getLogger(__name__)

PREFIX: Final = routes.ADMIN_PREFIX
MAX_BODY_BYTES: Final = 16 * 1024
REALM: Final = 'Bearer realm="ressonance-admin"'
NO_STORE: Final = {"Cache-Control": "no-store"}
DISABLED: Final = (
    "The admin API is disabled: set [server] admin_token, admin_token_file "
    "or RESSONANCE_ADMIN_TOKEN to enable it"
)
_CREATE_FIELDS: Final = {"id": str, "key": str, "name": str, "plan": str, "enabled": bool}
_PATCH_FIELDS: Final = {"name": str, "plan": str, "enabled": bool}


@dataclass(frozen=True, slots=True)
class AdminRequest:
    method: str
    path: str
    query: Mapping[str, str]
    authorization: str  # the Authorization header; "" when there is none
    body: bytes
    route: Route  # of `path`, resolved by whoever read the request
    oversized: bool = False  # the body was longer than `max_body_bytes` and was not read

    @classmethod
    def at(
        cls,
        method: str,
        path: str,
        query: Mapping[str, str],
        authorization: str,
        body: bytes,
        *,
        oversized: bool = False,
    ) -> AdminRequest:
        """A request to `path`, routed here (for callers that have not routed it)."""
        return cls(method, path, query, authorization, body, routes.resolve(path), oversized)


Params = Mapping[str, str]
Handler = Callable[[AdminRequest, Params], Awaitable[ApiResponse]]


@dataclass(frozen=True, slots=True)
class Operation:
    """What one method of one admin endpoint does (an operation, in OpenAPI's words)."""

    method: str
    endpoint: Endpoint
    handler: Handler
    public: bool = False

    @property
    def template(self) -> str:
        """The path as in the OpenAPI document, relative to PREFIX: "/apps/{id}"."""
        return self.endpoint.template[len(PREFIX) :]


class UnauthorizedError(ApiError):
    """401 with the `WWW-Authenticate` challenge a client should answer."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(401, message)
        self.challenge = challenge


def openapi_document() -> JsonBody:
    """The OpenAPI 3.1 description of this API (shipped next to this module)."""
    text = resources.files("ressonance.server").joinpath("admin_openapi.json").read_text()
    document: JsonBody = json.loads(text)
    return document


class AdminApi:
    """Routes, authenticates and answers admin API requests."""

    def __init__(
        self,
        admin: AppAdmin,
        usage: UsageStore,
        webhooks: WebhookQueue,
        *,
        token: str,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.admin = admin
        self.usage = usage
        self.webhooks = webhooks
        self._token = token.encode()
        self.max_body_bytes = max_body_bytes
        self._document = openapi_document()
        self.operations = [
            Operation("GET", routes.ADMIN_OPENAPI, self._openapi, public=True),
            Operation("GET", routes.ADMIN_APPS, self._list),
            Operation("POST", routes.ADMIN_APPS, self._create),
            Operation("GET", routes.ADMIN_APP, self._show),
            Operation("PATCH", routes.ADMIN_APP, self._update),
            Operation("DELETE", routes.ADMIN_APP, self._delete),
            Operation("POST", routes.ADMIN_DISABLE, self._disable),
            Operation("POST", routes.ADMIN_ENABLE, self._enable),
            Operation("POST", routes.ADMIN_ROTATE_SECRET, self._rotate_secret),
            Operation("GET", routes.ADMIN_USAGE, self._usage),
            Operation("GET", routes.ADMIN_DEAD_LETTERS, self._dead_letters),
            Operation("POST", routes.ADMIN_REPLAY, self._replay),
            Operation("GET", routes.ADMIN_DELIVERIES, self._deliveries),
        ]
        self._by_route = {(op.endpoint, op.method): op for op in self.operations}

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    async def handle(self, request: AdminRequest) -> ApiResponse:
        """Answer `request`; never cached (answers may carry a secret)."""
        response = await self._handle(request)
        return ApiResponse(response.status, response.body, {**response.headers, **NO_STORE})

    async def _handle(self, request: AdminRequest) -> ApiResponse:
        try:
            return await self._answer(request)
        except MethodNotAllowedError as error:
            response = error_response(error)
            return ApiResponse(response.status, response.body, {"Allow": ", ".join(error.allowed)})
        except UnauthorizedError as error:
            return ApiResponse(
                401, error_response(error).body, {"WWW-Authenticate": error.challenge}
            )
        except ApiError as error:
            return error_response(error)
        except (InvalidAppError, WebhookQueryError) as exc:
            return error_response(ApiError(422, str(exc)))
        except AppNotFoundError as exc:
            return error_response(ApiError(404, f"No app: {exc}"))
        except (AppExistsError, ReadOnlyRegistryError) as exc:
            return error_response(ApiError(409, f"Conflict: {exc}"))
        except Exception:
            log.exception("event=admin_api_failed method=%s path=%s", request.method, request.path)
            return error_response(ApiError(500, "Internal server error"))

    async def _answer(self, request: AdminRequest) -> ApiResponse:
        if not self.enabled:
            raise ApiError(404, DISABLED)
        operation = self._operation(request)
        if not operation.public:
            self._authenticate(request)
        if request.oversized or len(request.body) > self.max_body_bytes:
            raise ApiError(413, f"Request body is larger than {self.max_body_bytes // 1024} KB")
        return await operation.handler(request, request.route.params)

    def _operation(self, request: AdminRequest) -> Operation:
        path, endpoint = request.path, request.route.endpoint
        if endpoint is None or endpoint.area is not Area.ADMIN:
            if not path.startswith(PREFIX + "/"):
                raise ApiError(404, f"Nothing at {path[:100]}; the admin API is {PREFIX}/")
            raise ApiError(404, f"No admin API endpoint at {PREFIX}{path[len(PREFIX) :][:100]}")
        if request.method not in endpoint.methods:
            raise MethodNotAllowedError(request.method, list(endpoint.methods))
        return self._by_route[(endpoint, request.method)]

    def _authenticate(self, request: AdminRequest) -> None:
        scheme, _, given = request.authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise UnauthorizedError(
                "Missing admin token: send Authorization: Bearer <token>", REALM
            )
        if not hmac.compare_digest(given.strip().encode(), self._token):
            log.warning("event=admin_unauthorized method=%s path=%s", request.method, request.path)
            raise UnauthorizedError("Wrong admin token", REALM + ', error="invalid_token"')

    # --- handlers ----------------------------------------------------------------------

    async def _openapi(self, _: AdminRequest, __: Params) -> ApiResponse:
        return ApiResponse(200, self._document)

    async def _list(self, _: AdminRequest, __: Params) -> ApiResponse:
        return ApiResponse(200, {"apps": [view.to_json() for view in await self.admin.all()]})

    async def _create(self, request: AdminRequest, _: Params) -> ApiResponse:
        body = _object(request.body, allow_empty=True)
        values = _fields(body, _CREATE_FIELDS, {"settings"})
        issued = await self.admin.create(
            name=_string(values, "name"),
            plan=_string(values, "plan"),
            enabled=bool(values.get("enabled", True)),
            settings=_settings(body, allow_null=False),
            app_id=_optional_string(values, "id"),
            key=_optional_string(values, "key"),
        )
        location = {"Location": f"{PREFIX}/apps/{issued.app.id}"}
        return ApiResponse(201, issued.to_json(), location)

    async def _show(self, _: AdminRequest, params: Params) -> ApiResponse:
        return ApiResponse(200, (await self.admin.show(params["id"])).to_json())

    async def _update(self, request: AdminRequest, params: Params) -> ApiResponse:
        body = _object(request.body, allow_empty=False)
        if body.get("plan", "") is None:
            body["plan"] = ""  # null: off any plan
        values = _fields(body, _PATCH_FIELDS, {"settings"})
        change = AppChange(
            name=_optional_string(values, "name"),
            plan=_optional_string(values, "plan"),
            enabled=values.get("enabled"),  # type: ignore[arg-type]
            settings=_settings(body, allow_null=True),
        )
        return ApiResponse(200, (await self.admin.update(params["id"], change)).to_json())

    async def _delete(self, _: AdminRequest, params: Params) -> ApiResponse:
        await self.admin.delete(params["id"])
        return ApiResponse(200, {"id": params["id"], "deleted": True})

    async def _disable(self, _: AdminRequest, params: Params) -> ApiResponse:
        return ApiResponse(200, (await self.admin.disable(params["id"])).to_json())

    async def _enable(self, _: AdminRequest, params: Params) -> ApiResponse:
        return ApiResponse(200, (await self.admin.enable(params["id"])).to_json())

    async def _rotate_secret(self, _: AdminRequest, params: Params) -> ApiResponse:
        return ApiResponse(200, (await self.admin.rotate_secret(params["id"])).to_json())

    async def _usage(self, request: AdminRequest, params: Params) -> ApiResponse:
        days = _days(request.query.get("days"))
        app = await self.admin.show(params["id"])  # 404 for an unknown app
        report = await usage_report(self.usage, app.id, now=self.admin.clock(), days=days)
        return ApiResponse(200, report.to_json())

    async def _dead_letters(self, request: AdminRequest, params: Params) -> ApiResponse:
        limit = parse_limit(request.query.get("limit"))
        app = await self.admin.resolved(params["id"])
        after = request.query.get("after", "")
        body = await dead_letters_of(self.webhooks, app.id, app.webhooks, after=after, limit=limit)
        return ApiResponse(200, body)

    async def _replay(self, request: AdminRequest, params: Params) -> ApiResponse:
        ids = _replay_ids(_object(request.body, allow_empty=True))
        app = await self.admin.resolved(params["id"])
        return ApiResponse(200, {"replayed": await replay(self.webhooks, app.id, ids)})

    async def _deliveries(self, request: AdminRequest, params: Params) -> ApiResponse:
        limit = parse_limit(request.query.get("limit"))
        app = await self.admin.resolved(params["id"])
        selected = select_endpoints(app.webhooks, request.query.get("endpoint"))
        return ApiResponse(200, await deliveries(self.webhooks, app.id, selected, limit))


def _replay_ids(body: Mapping[str, object]) -> list[str] | None:
    """`{"ids": [...]}` or `{"all": true}` (None: every dead letter)."""
    if set(body) == {"all"} and body["all"] is True:
        return None
    ids = body.get("ids")
    if set(body) != {"ids"} or not isinstance(ids, list) or not ids:
        raise ApiError(422, 'Give {"ids": ["..."]} (a non-empty list) or {"all": true}')
    if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids) or len(ids) > 1000:
        raise ApiError(422, "ids: at most 1000 dead letter ids (strings)")
    return [str(i) for i in ids]


def _object(body: bytes, *, allow_empty: bool) -> dict[str, object]:
    if not body.strip() and allow_empty:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(422, "Request body must be a JSON object")
    if not value and not allow_empty:
        raise ApiError(422, "Request body changes nothing: give name, plan, enabled or settings")
    return value


def _fields(
    body: Mapping[str, object], types: Mapping[str, type], others: set[str]
) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, value in body.items():
        if name in others:
            continue
        expected = types.get(name)
        if expected is None:
            known = ", ".join(sorted({*types, *others}))
            raise ApiError(422, f"{name[:40]}: unknown field (expected {known})")
        if not isinstance(value, expected):
            kind = "true or false" if expected is bool else "a string"
            raise ApiError(422, f"{name}: must be {kind}")
        values[name] = value
    return values


def _string(values: Mapping[str, object], name: str) -> str:
    return str(values.get(name, ""))


def _optional_string(values: Mapping[str, object], name: str) -> str | None:
    value = values.get(name)
    return None if value is None else str(value)


def _settings(body: Mapping[str, object], *, allow_null: bool) -> dict[str, object | None]:
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise ApiError(422, "settings: must be an object of app settings")
    if not allow_null:
        for name, value in settings.items():
            if value is None:
                raise ApiError(422, f"settings.{name[:40]}: must not be null")
    return settings


def _days(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_USAGE_DAYS
    if (
        not (raw.isascii() and raw.isdigit() and len(raw) <= 3)
        or not 1 <= int(raw) <= MAX_USAGE_DAYS
    ):
        raise ApiError(422, f"days: must be a whole number from 1 to {MAX_USAGE_DAYS}")
    return int(raw)
