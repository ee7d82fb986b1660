"""The admin API (server/admin_api.py) over a memory registry and usage store.

Each answer is also checked against the response schema the OpenAPI document gives for its
route and status, so the document cannot drift from what the API sends.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from ressonance.apps.admin import AppAdmin
from ressonance.apps.base import AppRecord
from ressonance.apps.memory import MemoryAppRegistry
from ressonance.apps.plans import FREE
from ressonance.apps.settings import APP_SETTINGS
from ressonance.server.admin_api import (
    DISABLED,
    PREFIX,
    AdminApi,
    AdminRequest,
    openapi_document,
)
from ressonance.server.http_api import ApiResponse
from ressonance.state.memory import MemoryUsageStore
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue
from tests.fakes import FakeClock

TOKEN = "t0ken-for-tests-0123456789"
BEARER = f"Bearer {TOKEN}"
DOCUMENT = openapi_document()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # 2023-11-14T22:13:20Z


@pytest.fixture
def registry(clock: FakeClock) -> MemoryAppRegistry:
    return MemoryAppRegistry(clock=clock)


@pytest.fixture
def usage() -> MemoryUsageStore:
    return MemoryUsageStore()


@pytest.fixture
def api(registry: MemoryAppRegistry, usage: MemoryUsageStore, clock: FakeClock) -> AdminApi:
    webhooks = SqliteWebhookQueue(None, node_id="n", clock=clock)
    return AdminApi(AppAdmin(registry, {"free": FREE}, clock), usage, webhooks, token=TOKEN)


async def call(
    api: AdminApi,
    method: str,
    path: str,
    body: object = None,
    *,
    authorization: str = BEARER,
    query: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> ApiResponse:
    data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    response = await api.handle(
        AdminRequest.at(method, PREFIX + path, query or {}, authorization, data)
    )
    check_against_document(method, path, response)
    return response


# --- the document's schemas, applied to real answers ------------------------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = DOCUMENT
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


PYTHON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "null": type(None),
}


def conforms(value: Any, schema: dict[str, Any], where: str = "body") -> None:
    """Assert `value` is what `schema` (a subset of JSON Schema: what the document uses) says."""
    schema = _resolve(schema)
    if "anyOf" in schema and "type" not in schema:
        _any_of(value, schema["anyOf"], where)
        return
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    kinds = schema.get("type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    assert not kinds or any(
        isinstance(value, PYTHON_TYPES[k]) and not (k == "integer" and isinstance(value, bool))
        for k in kinds
    ), f"{where}: {value!r} is not {kinds}"
    if isinstance(value, dict):
        _object_conforms(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            conforms(item, schema["items"], f"{where}[{index}]")


def _any_of(value: Any, options: list[dict[str, Any]], where: str) -> None:
    errors = []
    for option in options:
        try:
            conforms(value, option, where)
            return
        except AssertionError as exc:
            errors.append(str(exc))
    raise AssertionError(f"{where}: matches no option: {errors}")


def _object_conforms(value: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        assert name in value, f"{where}: {name} is required"
    for name, item in value.items():
        if name in properties:
            conforms(item, properties[name], f"{where}.{name}")
        else:
            assert schema.get("additionalProperties", True) is not False, (
                f"{where}.{name}: not in the document"
            )


def check_against_document(method: str, path: str, response: ApiResponse) -> None:
    template = _template(method, path.partition("?")[0])
    if template is None:
        return  # a path the API does not have: nothing to compare
    answers = DOCUMENT["paths"][template][method.lower()]["responses"]
    status = str(response.status)
    documented = answers.get(status, answers.get("default"))
    assert documented is not None, f"{method} {template}: {status} undocumented"
    if status not in answers:
        assert response.status in (404, 500), f"{method} {template}: {status} undocumented"
    answer = _resolve(documented)
    conforms(response.body, answer["content"]["application/json"]["schema"])
    for header in answer.get("headers", {}):
        assert header in response.headers, f"{method} {template}: {header} header is missing"


def _template(method: str, path: str) -> str | None:
    for template, operations in DOCUMENT["paths"].items():
        parts, wanted = template.split("/"), path.split("/")
        if len(parts) == len(wanted) and all(
            p == w or (p.startswith("{") and w) for p, w in zip(parts, wanted, strict=True)
        ):
            return template if method.lower() in operations else None
    return None


# --- the document and the routes -----------------------------------------------------------


def test_every_route_is_in_the_document_and_every_documented_operation_is_routed(
    api: AdminApi,
) -> None:
    routed = {(route.method, route.template) for route in api.operations}
    documented = {
        (method.upper(), path)
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert routed == documented
    assert DOCUMENT["openapi"].startswith("3.1")
    assert DOCUMENT["servers"] == [{"url": PREFIX}]


def test_the_documented_settings_are_the_settings_an_app_takes() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert set(schemas["Settings"]["properties"]) == APP_SETTINGS
    assert set(schemas["AppPatch"]["properties"]["settings"]["properties"]) == APP_SETTINGS


def test_public_routes_are_the_ones_the_document_leaves_unsecured(api: AdminApi) -> None:
    public = {(r.method, r.template) for r in api.operations if r.public}
    unsecured = {
        (method.upper(), path)
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        if method != "parameters" and operation.get("security") == []
    }
    assert public == unsecured == {("GET", "/openapi.json")}


async def test_the_document_is_served_without_a_token(api: AdminApi) -> None:
    response = await call(api, "GET", "/openapi.json", authorization="")
    assert response.status == 200
    assert response.body == DOCUMENT


# --- authentication --------------------------------------------------------------------------


async def test_without_a_configured_token_the_api_does_not_exist(
    registry: MemoryAppRegistry, usage: MemoryUsageStore
) -> None:
    api = AdminApi(AppAdmin(registry), usage, SqliteWebhookQueue(None, node_id="n"), token="")
    for path in ("/apps", "/openapi.json"):
        response = await call(api, "GET", path, authorization="Bearer ")
        assert (response.status, response.body) == (404, {"error": DISABLED, "code": 404})


@pytest.mark.parametrize("authorization", ["", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", TOKEN])
async def test_a_missing_token_is_401_with_a_bearer_challenge(
    api: AdminApi, authorization: str
) -> None:
    response = await call(api, "GET", "/apps", authorization=authorization)
    assert response.status == 401
    assert response.body == {
        "error": "Missing admin token: send Authorization: Bearer <token>",
        "code": 401,
    }
    assert response.headers == {
        "WWW-Authenticate": 'Bearer realm="ressonance-admin"',
        "Cache-Control": "no-store",
    }


@pytest.mark.parametrize("token", [TOKEN + "x", TOKEN[:-1], TOKEN.upper(), "é" * 8])
async def test_a_wrong_token_is_401_and_logged_without_the_token(
    api: AdminApi, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await call(api, "POST", "/apps", {}, authorization=f"Bearer {token}")
    assert (response.status, response.body["error"]) == (401, "Wrong admin token")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="ressonance-admin", error="invalid_token"'
    )
    assert "event=admin_unauthorized method=POST path=/admin/v1/apps" in caplog.text
    assert token not in caplog.text


async def test_the_scheme_is_case_insensitive(api: AdminApi) -> None:
    assert (await call(api, "GET", "/apps", authorization=f"bearer {TOKEN}")).status == 200


async def test_unauthenticated_requests_learn_nothing_about_apps(
    api: AdminApi, registry: MemoryAppRegistry
) -> None:
    await registry.create(AppRecord("1", "k", "s" * 32))
    for method, path in [("GET", "/apps/1"), ("GET", "/apps/2"), ("DELETE", "/apps/1")]:
        assert (await call(api, method, path, authorization="")).status == 401
    assert await registry.record("1") is not None


# --- apps ------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_secret_and_where_the_app_is(
    api: AdminApi, registry: MemoryAppRegistry
) -> None:
    response = await call(
        api, "POST", "/apps", {"name": "Shop", "plan": "free", "settings": {"watchlist": True}}
    )

    assert response.status == 201
    body = response.body
    assert response.headers == {
        "Location": f"{PREFIX}/apps/{body['id']}",
        "Cache-Control": "no-store",  # the body has a secret
    }
    stored = await registry.record(str(body["id"]))
    assert stored is not None
    assert body["secret"] == stored.secret
    assert (body["name"], body["plan"], body["settings"]) == ("Shop", "free", {"watchlist": True})
    assert body["created_at"] == "2023-11-14T22:13:20Z"


async def test_create_with_an_empty_body_uses_the_defaults(api: AdminApi) -> None:
    response = await call(api, "POST", "/apps")
    assert response.status == 201
    assert (response.body["name"], response.body["plan"], response.body["enabled"]) == (
        "",
        "",
        True,
    )


async def test_create_with_a_chosen_id_and_key_then_a_conflict(api: AdminApi) -> None:
    created = await call(api, "POST", "/apps", {"id": "100", "key": "my-key", "enabled": False})
    assert (created.body["id"], created.body["key"], created.body["enabled"]) == (
        "100",
        "my-key",
        False,
    )
    again = await call(api, "POST", "/apps", {"id": "100"})
    assert again.status == 409
    assert again.body["code"] == 409
    assert "100" in str(again.body["error"])


async def test_the_secret_is_only_in_create_and_rotate_answers(api: AdminApi) -> None:
    created = await call(api, "POST", "/apps", {"name": "Shop"})
    app_id, secret = created.body["id"], str(created.body["secret"])

    bodies = [
        (await call(api, "GET", "/apps")).body,
        (await call(api, "GET", f"/apps/{app_id}")).body,
        (await call(api, "PATCH", f"/apps/{app_id}", {"name": "Shop 2"})).body,
        (await call(api, "POST", f"/apps/{app_id}/disable")).body,
        (await call(api, "POST", f"/apps/{app_id}/enable")).body,
    ]
    for body in bodies:
        assert secret not in json.dumps(body)
    rotated = await call(api, "POST", f"/apps/{app_id}/rotate-secret")
    assert rotated.status == 200
    assert rotated.body["secret"] != secret
    assert rotated.body["secret_hint"] == "****" + str(rotated.body["secret"])[-4:]


async def test_list_show_update_disable_enable_delete(
    api: AdminApi, registry: MemoryAppRegistry
) -> None:
    app_id = (await call(api, "POST", "/apps", {"name": "a", "plan": "free"})).body["id"]

    listed = await call(api, "GET", "/apps")
    assert [app["id"] for app in listed.body["apps"]] == [app_id]  # type: ignore[attr-defined]
    shown = await call(api, "GET", f"/apps/{app_id}")
    assert shown.body["effective_settings"]["max_connections"] == 100  # type: ignore[index]

    patched = await call(
        api,
        "PATCH",
        f"/apps/{app_id}",
        {"plan": None, "settings": {"max_connections": 7, "watchlist": True}},
    )
    assert (patched.status, patched.body["plan"]) == (200, "")
    assert patched.body["settings"] == {"max_connections": 7, "watchlist": True}
    unset = await call(api, "PATCH", f"/apps/{app_id}", {"settings": {"watchlist": None}})
    assert unset.body["settings"] == {"max_connections": 7}

    assert (await call(api, "POST", f"/apps/{app_id}/disable")).body["enabled"] is False
    assert (await call(api, "PATCH", f"/apps/{app_id}", {"enabled": True})).body["enabled"]
    assert (await call(api, "POST", f"/apps/{app_id}/disable")).body["enabled"] is False
    assert (await call(api, "POST", f"/apps/{app_id}/enable")).body["enabled"] is True

    deleted = await call(api, "DELETE", f"/apps/{app_id}")
    assert (deleted.status, deleted.body) == (200, {"id": app_id, "deleted": True})
    assert await registry.records() == []
    assert (await call(api, "GET", f"/apps/{app_id}")).status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/apps/9"),
        ("PATCH", "/apps/9"),
        ("DELETE", "/apps/9"),
        ("POST", "/apps/9/disable"),
        ("POST", "/apps/9/enable"),
        ("POST", "/apps/9/rotate-secret"),
        ("GET", "/apps/9/usage"),
    ],
)
async def test_an_unknown_app_is_404(api: AdminApi, method: str, path: str) -> None:
    response = await call(api, method, path, {"name": "x"} if method == "PATCH" else None)
    assert (response.status, response.body) == (
        404,
        {"error": "No app: no app with id '9'", "code": 404},
    )


@pytest.mark.parametrize(
    ("method", "body", "status", "message"),
    [
        ("POST", b"{", 400, "Request body is not valid JSON"),
        ("POST", b"[]", 422, "Request body must be a JSON object"),
        ("POST", b'{"colour": "red"}', 422, "colour: unknown field (expected enabled, id, key,"),
        ("POST", b'{"name": 5}', 422, "name: must be a string"),
        ("POST", b'{"enabled": "yes"}', 422, "enabled: must be true or false"),
        ("POST", b'{"plan": "gold"}', 422, "plan: no plan named 'gold'"),
        ("POST", b'{"id": "abc"}', 422, "id: 1 to 20 digits"),
        ("POST", b'{"settings": []}', 422, "settings: must be an object of app settings"),
        ("POST", b'{"settings": {"watchlist": null}}', 422, "settings.watchlist: must not be null"),
        ("POST", b'{"settings": {"max_connections": 0}}', 422, "settings.max_connections: must"),
        ("POST", b'{"settings": {"secret": "x"}}', 422, "settings.secret: unknown app setting"),
        ("PATCH", b"", 400, "Request body is not valid JSON"),
        ("PATCH", b"{}", 422, "Request body changes nothing: give name, plan, enabled or"),
        ("PATCH", b'{"key": "new"}', 422, "key: unknown field (expected enabled, name, plan,"),
        ("PATCH", b'{"enabled": null}', 422, "enabled: must be true or false"),
        ("PATCH", b'{"settings": {"colour": null}}', 422, "settings.colour: unknown app setting"),
    ],
)
async def test_bad_bodies_are_refused_naming_the_field(
    api: AdminApi,
    registry: MemoryAppRegistry,
    method: str,
    body: bytes,
    status: int,
    message: str,
) -> None:
    await registry.create(AppRecord("1", "k", "s" * 32, name="kept"))
    revision = await registry.revision()

    response = await call(api, method, "/apps" if method == "POST" else "/apps/1", raw=body)

    assert response.status == status
    assert response.body["code"] == status
    assert str(response.body["error"]).startswith(message)
    assert await registry.revision() == revision


async def test_a_body_over_the_limit_is_413_before_it_is_parsed(api: AdminApi) -> None:
    huge = b"{" + b" " * api.max_body_bytes + b"}"
    response = await call(api, "POST", "/apps", raw=huge)
    assert (response.status, response.body) == (
        413,
        {"error": "Request body is larger than 16 KB", "code": 413},
    )
    unread = AdminRequest.at("POST", PREFIX + "/apps", {}, BEARER, b"", oversized=True)
    assert (await api.handle(unread)).status == 413


async def test_a_wrong_method_is_405_with_allow(api: AdminApi) -> None:
    response = await call(api, "PUT", "/apps/1")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, PATCH, DELETE"
    assert response.body["code"] == 405


@pytest.mark.parametrize("path", ["/admin/v1/nothing", "/admin/v2/apps", "/admin/v1", "/admin"])
async def test_unknown_paths_are_404(api: AdminApi, path: str) -> None:
    response = await api.handle(AdminRequest.at("GET", path, {}, BEARER, b""))
    assert response.status == 404
    assert response.body["code"] == 404


async def test_a_failing_registry_is_500_and_logged(
    api: AdminApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> list[AppRecord]:
        raise OSError("disk on fire")

    monkeypatch.setattr(api.admin.registry, "records", broken)
    with caplog.at_level(logging.ERROR):
        response = await call(api, "GET", "/apps")
    assert (response.status, response.body) == (
        500,
        {"error": "Internal server error", "code": 500},
    )
    assert "event=admin_api_failed method=GET path=/admin/v1/apps" in caplog.text


# --- usage -----------------------------------------------------------------------------------


async def test_usage_per_day_with_a_total(
    api: AdminApi, registry: MemoryAppRegistry, usage: MemoryUsageStore
) -> None:
    await registry.create(AppRecord("1", "k", "s" * 32))
    await usage.add_messages("1", "2023-11-14", 40)
    await usage.add_messages("1", "2023-11-13", 2)
    await usage.record_connections("1", "2023-11-14", 9)
    await usage.add_messages("2", "2023-11-14", 1000)  # another app

    response = await call(api, "GET", "/apps/1/usage", query={"days": "2"})

    assert response.status == 200
    assert response.body == {
        "app_id": "1",
        "days": [
            {"day": "2023-11-13", "messages": 2, "peak_connections": 0},
            {"day": "2023-11-14", "messages": 40, "peak_connections": 9},
        ],
        "total_messages": 42,
    }


async def test_usage_covers_seven_days_unless_asked(
    api: AdminApi, registry: MemoryAppRegistry
) -> None:
    await registry.create(AppRecord("1", "k", "s" * 32))
    body = (await call(api, "GET", "/apps/1/usage")).body
    assert len(body["days"]) == 7  # type: ignore[arg-type]
    assert (await call(api, "GET", "/apps/1/usage", query={"days": "40"})).status == 200


@pytest.mark.parametrize("days", ["0", "41", "-1", "x", "", "1.5", "٣", "9" * 5000])
async def test_a_bad_days_is_422(api: AdminApi, registry: MemoryAppRegistry, days: str) -> None:
    await registry.create(AppRecord("1", "k", "s" * 32))
    response = await call(api, "GET", "/apps/1/usage", query={"days": days})
    assert (response.status, response.body) == (
        422,
        {"error": "days: must be a whole number from 1 to 40", "code": 422},
    )


def test_the_schema_check_catches_a_drifting_body() -> None:
    usage_schema = {"$ref": "#/components/schemas/Usage"}
    good = {"app_id": "1", "days": [], "total_messages": 0}
    conforms(good, usage_schema)
    with pytest.raises(AssertionError, match=r"body\.extra: not in the document"):
        conforms({**good, "extra": 1}, usage_schema)
    with pytest.raises(AssertionError, match="body: app_id is required"):
        conforms({"days": [], "total_messages": 0}, usage_schema)
    with pytest.raises(AssertionError, match=r"body\.total_messages: True is not"):
        conforms({**good, "total_messages": True}, usage_schema)
