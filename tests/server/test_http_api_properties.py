"""Properties of the HTTP API (§5) over generated requests: never a 500.

Whatever the method, path, query and body, the answer is a JSON object: 200, or a 4xx with
`{"error": message, "code": status}`. Signed requests get past authentication to the
validators; a signed trigger is published (200) or refused with 400 or 413 and a message that
names the field at fault.

Each example gets its own node over memory stores, so examples do not share state. Strings
never hold lone surrogates here: the transport decodes paths and queries with replacement
characters, and bodies arrive as bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import string

import orjson
from hypothesis import event as note, given, strategies as st

from ressonance.protocol.signing import sign_request
from ressonance.server.http_api import ApiRequest, ApiResponse
from ressonance.server.service import http_api, memory_node
from tests.fakes import FakeClock
from tests.server.conftest import APP
from tests.strategies import NAME_ALPHABET, dumps, json_values_of

NOW = FakeClock()()
SIGNING_PARAMS = {"auth_key", "auth_timestamp", "auth_signature", "auth_version", "body_md5"}


async def _answer(request: ApiRequest) -> ApiResponse:
    node = memory_node([APP], clock=FakeClock())
    await node.start()
    try:
        return await http_api(node).handle(request)
    finally:
        await node.stop()


def answer(request: ApiRequest) -> ApiResponse:
    """The answer, checked: 200 or 4xx, and a JSON object as the transport would send it."""
    response = asyncio.run(_answer(request))
    assert response.status == 200 or 400 <= response.status < 500, response
    body = orjson.loads(orjson.dumps(response.body))
    assert isinstance(body, dict)
    if response.status != 200:
        assert set(body) == {"error", "code"}, body
        assert body["code"] == response.status
        assert isinstance(body["error"], str)
        assert body["error"]
    return response


def signed(method: str, path: str, query: dict[str, str], body: bytes) -> ApiRequest:
    """`query` plus valid signing parameters, as the official SDKs sign (§5.6)."""
    params = {**query, "auth_key": APP.key, "auth_timestamp": str(int(NOW)), "auth_version": "1.0"}
    if body:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    params["auth_signature"] = sign_request(APP.secret, method, path, params)
    return ApiRequest.at(method, path, params, body)


# --- strategies ---------------------------------------------------------------------------

json_values = json_values_of(st.text(max_size=20))

methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]) | st.text(max_size=8)
segments = st.sampled_from(["1", "2", "presence-room", "private-x", "42"]) | st.text(max_size=20)
ROUTES = (
    "/apps/{}/events",
    "/apps/{}/batch_events",
    "/apps/{}/channels",
    "/apps/{}/channels/{}",
    "/apps/{}/channels/{}/users",
    "/apps/{}/users/{}/terminate_connections",
    "/users/{}/terminate_connections",
)
route_paths = st.builds(
    lambda route, first, second: route.format(first, second),
    st.sampled_from(ROUTES),
    st.just("1") | segments,
    segments,
)
paths = route_paths | st.text(max_size=40).map(lambda path: "/" + path)
timestamps = st.one_of(
    st.just(str(int(NOW))),
    st.integers().map(str),
    st.integers(300, 400).map(lambda digits: "9" * digits),  # past what a double holds
    st.text(max_size=12),
)
auth_queries = st.fixed_dictionaries(
    {},
    optional={
        "auth_key": st.just(APP.key) | st.text(max_size=10),
        "auth_timestamp": timestamps,
        "auth_signature": st.text(string.hexdigits, max_size=64),
        "auth_version": st.just("1.0"),
        "body_md5": st.text(string.hexdigits, max_size=32),
    },
)
extra_queries = st.dictionaries(
    st.sampled_from(["info", "filter_by_prefix"]) | st.text(max_size=10),
    st.sampled_from(["user_count", "subscription_count", "cache", "presence-", ""])
    | st.text(max_size=20),
    max_size=3,
).map(lambda query: {k: v for k, v in query.items() if k.lower() not in SIGNING_PARAMS})
bodies = st.one_of(
    st.just(b""), st.binary(max_size=100), json_values.map(lambda v: dumps(v).encode())
)

# Triggers: each field valid or not, tagged, so the test knows what must be accepted.
channel_names = st.builds(
    str.__add__,
    st.sampled_from(["", "private-", "presence-", "cache-", "private-encrypted-"]),
    st.text(NAME_ALPHABET, min_size=1, max_size=40),
)
not_strings = json_values.filter(lambda value: not isinstance(value, str))
not_null_or_strings = not_strings.filter(lambda value: value is not None)  # null: not given
bad_channel_names = st.one_of(
    st.builds(
        lambda before, bad, after: before + bad + after,
        st.text(NAME_ALPHABET, max_size=5),
        st.sampled_from([" ", "#", "/", "é", "\x00", "\n", ":", "*"]),
        st.text(NAME_ALPHABET, max_size=5),
    ),
    st.just(""),
    st.integers(201, 210).map(lambda n: "a" * n),
    not_strings,
)
fields = {
    "name": (
        st.text(min_size=1, max_size=200),
        st.just("") | st.just("e" * 201) | not_strings,
    ),
    "data": (
        st.text(max_size=200) | json_values.map(dumps),
        st.just("x" * (10 * 1024 + 1)) | not_strings,
    ),
    "channels": (
        st.lists(channel_names, min_size=1, max_size=4) | channel_names,
        st.one_of(
            st.just([]),
            st.integers(101, 120).map(lambda n: [f"c{i}" for i in range(n)]),
            st.tuples(st.lists(channel_names, max_size=2), bad_channel_names).map(
                lambda names: [*names[0], names[1]]
            ),
            bad_channel_names,
            not_strings.filter(lambda value: not isinstance(value, list)),
        ),
    ),
    "socket_id": (
        st.from_regex(r"[0-9]+\.[0-9]+", fullmatch=True),
        st.text(max_size=12).filter(lambda text: "." not in text) | not_null_or_strings,
    ),
    "info": (
        st.sampled_from(["", "user_count", "subscription_count", "subscription_count,user_count"]),
        st.text(string.ascii_letters, min_size=1, max_size=8) | not_null_or_strings,
    ),
}
# The words an error message uses for each field.
NAMED_BY = {
    "name": ("'name'", "Event name"),
    "data": ("'data'", "Event data"),
    "channels": ("'channels'", "Channel name", "channels"),
    "socket_id": ("'socket_id'",),
    "info": ("'info'", "info attribute"),
}
OPTIONAL = {"socket_id", "info"}


@st.composite
def triggers(draw: st.DrawFn) -> tuple[dict[str, object], set[str]]:
    """A trigger body and the fields it gets wrong (a missing required field is wrong)."""
    body: dict[str, object] = {}
    wrong = set()
    for field, (valid, invalid) in fields.items():
        choice = draw(st.sampled_from(["valid", "valid", "valid", "invalid", "missing"]))
        if choice == "missing":
            if field not in OPTIONAL:
                wrong.add(field)
            continue
        if choice == "invalid":
            wrong.add(field)
        # The PHP SDK sends `channel` (§5.1); either key takes a name or a list of names.
        key = "channel" if field == "channels" and draw(st.booleans()) else field
        body[key] = draw(valid if choice == "valid" else invalid)
    return body, wrong


def check_refusal(response: ApiResponse, wrong: set[str]) -> None:
    note(f"refused with {response.status}")
    assert response.status in (400, 413), response
    message = str(response.body["error"])
    assert any(word in message for field in wrong for word in NAMED_BY[field]), (message, wrong)
    if response.status == 413:
        assert "data" in wrong
        assert "larger than" in message


# --- properties ---------------------------------------------------------------------------


@given(methods, paths, auth_queries, extra_queries, bodies)
def test_any_request_gets_a_json_answer_and_never_a_500(
    method: str, path: str, auth: dict[str, str], query: dict[str, str], body: bytes
) -> None:
    answer(ApiRequest.at(method, path, {**query, **auth}, body))


@given(st.sampled_from(["GET", "POST"]), route_paths, extra_queries, bodies)
def test_any_signed_request_gets_a_json_answer_and_never_a_500(
    method: str, path: str, query: dict[str, str], body: bytes
) -> None:
    answer(signed(method, path, query, body))


@given(
    st.sampled_from(["GET", "POST"]),
    route_paths,
    bodies,
    st.dictionaries(st.sampled_from(sorted(SIGNING_PARAMS)), st.none() | timestamps, min_size=1),
)
def test_a_request_with_tampered_signing_parameters_is_refused_with_401_or_answered(
    method: str, path: str, body: bytes, tampered: dict[str, str | None]
) -> None:
    request = signed(method, path, {}, body)
    query = {k: v for k, v in {**request.query, **tampered}.items() if v is not None}

    answer(ApiRequest.at(method, path, query, body))


@given(triggers())
def test_a_signed_trigger_is_published_or_refused_naming_what_is_wrong(
    trigger: tuple[dict[str, object], set[str]],
) -> None:
    body, wrong = trigger

    response = answer(signed("POST", "/apps/1/events", {}, dumps(body).encode()))

    if wrong:
        check_refusal(response, wrong)
    else:
        note("published")
        assert response.status == 200, response


@given(st.lists(triggers(), min_size=1, max_size=12))
def test_a_signed_batch_is_published_or_refused_naming_what_is_wrong(
    batch: list[tuple[dict[str, object], set[str]]],
) -> None:
    # A batch item names one channel: `channel`, not `channels` (§5.2).
    items = [
        {("channel" if k == "channels" else k): v for k, v in body.items()} for body, _ in batch
    ]
    wrong = set().union(*(wrong for _, wrong in batch))

    response = answer(signed("POST", "/apps/1/batch_events", {}, dumps({"batch": items}).encode()))

    if len(batch) > APP.max_event_batch_size:
        assert response.status == 400
        assert "Batch has" in str(response.body["error"])
    elif wrong:
        check_refusal(response, wrong)
    else:
        note("published")
        assert response.status == 200, response
