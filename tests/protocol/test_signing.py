"""Signatures: the reference's known-answer vectors (§4, §5.6) and HTTP request verification.

Verification must accept every official SDK's style (§0.8, §5.6): Python adds body_md5 =
md5("") even on GET, Node adds body_md5 only with a body, PHP percent-encodes the query
(decoded before verification), and nobody escapes values when signing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import pusher
import pytest

from ressonance.protocol.errors import ApiError
from ressonance.protocol.signing import (
    channel_auth,
    request_string,
    sign,
    sign_request,
    token_matches,
    user_auth,
    verify_request,
    webhook_signature,
)

from .wire import KEY, SECRET, SOCKET_ID

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"

# §5.6 worked example.
EVENTS_BODY = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
EVENTS_BODY_MD5 = "ec365a775a4cd0599faeb73354201b6f"
EVENTS_TIMESTAMP = 1353088179
EVENTS_PARAMS = {
    "auth_key": KEY,
    "auth_timestamp": str(EVENTS_TIMESTAMP),
    "auth_version": "1.0",
    "body_md5": EVENTS_BODY_MD5,
}
EVENTS_SIGNATURE = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"

# --- §4 known answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (
            channel_auth(KEY, SECRET, SOCKET_ID, "private-foobar"),
            f"{KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
        ),
        (
            user_auth(KEY, SECRET, SOCKET_ID, '{"id":"12345"}'),
            f"{KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        ),
        # The docs now show "Mr. Channels"; their stale digest only matches "Mr. Pusher" (§4).
        (
            channel_auth(
                KEY,
                SECRET,
                SOCKET_ID,
                "presence-foobar",
                '{"user_id":10,"user_info":{"name":"Mr. Channels"}}',
            ),
            f"{KEY}:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
        ),
    ],
    ids=["private-foobar", "signin", "presence-mr-channels"],
)
def test_auth_tokens_known_answers(token: str, expected: str) -> None:
    assert token == expected


def test_presence_auth_known_answer() -> None:
    channel_data = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'

    token = channel_auth(KEY, SECRET, SOCKET_ID, "presence-foobar", channel_data)

    assert token.startswith(f"{KEY}:afaed369")
    assert token.endswith("304c")
    assert len(token) == len(KEY) + 1 + 64


@pytest.mark.parametrize(
    ("sdk_auth", "ours"),
    [
        # The PyPI SDK serialises with spaces; we sign whatever string it produced.
        (
            lambda c: c.authenticate("private-foobar", SOCKET_ID),
            lambda d: channel_auth(KEY, SECRET, SOCKET_ID, "private-foobar"),
        ),
        (
            lambda c: c.authenticate(
                "presence-foobar", SOCKET_ID, {"user_id": 10, "user_info": {"name": "Mr. Pusher"}}
            ),
            lambda d: channel_auth(KEY, SECRET, SOCKET_ID, "presence-foobar", d["channel_data"]),
        ),
        (
            lambda c: c.authenticate_user(SOCKET_ID, {"id": "12345"}),
            lambda d: user_auth(KEY, SECRET, SOCKET_ID, d["user_data"]),
        ),
    ],
)
def test_tokens_match_the_python_sdk(
    sdk_auth: Callable[[pusher.Pusher], dict[str, str]],
    ours: Callable[[dict[str, str]], str],
) -> None:
    response = sdk_auth(pusher.Pusher("3", KEY, SECRET))

    assert response["auth"] == ours(response)


VALID = channel_auth(KEY, SECRET, SOCKET_ID, "private-foobar")
DIGEST = VALID.partition(":")[2]


@pytest.mark.parametrize(
    ("token", "matches"),
    [
        (VALID, True),
        (f"{KEY}:{DIGEST.upper()}", False),
        (f"wrong-key:{DIGEST}", False),
        (f"{KEY}x:{DIGEST}", False),
        (f":{DIGEST}", False),
        (DIGEST, False),
        (f"{KEY}:", False),
        (f"{KEY}:{DIGEST[:-1]}", False),
        (f"{KEY}:{DIGEST}0", False),
        (f"{KEY}:{channel_auth(KEY, SECRET, '1234.1235', 'private-foobar')}", False),
        ("", False),
        (None, False),
        (12345, False),
        ({"auth": VALID}, False),
        (f"{KEY}:\u00e9", False),
    ],
)
def test_token_matches(token: object, matches: bool) -> None:
    assert token_matches(token, KEY, SECRET, f"{SOCKET_ID}:private-foobar") is matches


# --- §5.6 request signing ------------------------------------------------------------------


def test_request_signing_worked_example() -> None:
    assert hashlib.md5(EVENTS_BODY).hexdigest() == EVENTS_BODY_MD5
    assert request_string("POST", "/apps/3/events", EVENTS_PARAMS) == (
        "POST\n/apps/3/events\n"
        f"auth_key={KEY}&auth_timestamp=1353088179&auth_version=1.0&body_md5={EVENTS_BODY_MD5}"
    )
    assert sign_request(SECRET, "POST", "/apps/3/events", EVENTS_PARAMS) == EVENTS_SIGNATURE


@pytest.mark.parametrize(
    ("method", "path", "params", "expected"),
    [
        ("get", "/apps/3/channels", {}, "GET\n/apps/3/channels\n"),
        # Keys lowercased and sorted; auth_signature left out; values not escaped.
        (
            "GET",
            "/apps/3/channels",
            {
                "info": "user_count,subscription_count",
                "auth_signature": "x",
                "Filter_By_Prefix": "presence-",
                "name": "Something else",
            },
            "GET\n/apps/3/channels\n"
            "filter_by_prefix=presence-&info=user_count,subscription_count&name=Something else",
        ),
        ("post", "/apps/3/events", {"b": "2", "a": "1"}, "POST\n/apps/3/events\na=1&b=2"),
        ("GET", "/x", {"AUTH_SIGNATURE": "x"}, "GET\n/x\n"),
    ],
)
def test_request_string(method: str, path: str, params: dict[str, str], expected: str) -> None:
    assert request_string(method, path, params) == expected


NOW = 1_700_000_000


def signed(
    method: str, path: str, params: dict[str, str], *, secret: str = SECRET
) -> dict[str, str]:
    """`params` plus the auth_signature an SDK would add."""
    return {**params, "auth_signature": sign_request(secret, method, path, params)}


def auth(**extra: str) -> dict[str, str]:
    return {"auth_key": KEY, "auth_timestamp": str(NOW), "auth_version": "1.0", **extra}


def md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def php_style(method: str, path: str, params: dict[str, str]) -> dict[str, str]:
    """Signed unencoded, sent percent-encoded (Guzzle), URL-decoded by the server."""
    query = urlencode(signed(method, path, params))
    assert "%2C" in query  # what PHP puts on the wire for a comma
    return dict(parse_qsl(query, keep_blank_values=True))


BODY = b'{"name":"my-event","channels":["a"],"data":"{}"}'
CHANNELS_INFO = {"filter_by_prefix": "presence-", "info": "user_count,subscription_count"}


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "now"),
    [
        # §5.6 worked example, at the moment it was made.
        (
            "POST",
            "/apps/3/events",
            {**EVENTS_PARAMS, "auth_signature": EVENTS_SIGNATURE},
            EVENTS_BODY,
            EVENTS_TIMESTAMP,
        ),
        # Python: body_md5 = md5("") on GET.
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", auth(body_md5=EMPTY_MD5)),
            b"",
            NOW,
        ),
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", auth(body_md5=EMPTY_MD5, **CHANNELS_INFO)),
            b"",
            NOW,
        ),
        # Node: no body_md5 without a body; values with commas and spaces left unescaped.
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", auth(**CHANNELS_INFO)),
            b"",
            NOW,
        ),
        (
            "GET",
            "/apps/3/channels/presence-a",
            signed("GET", "/apps/3/channels/presence-a", auth(info="user_count", note="a b, c")),
            b"",
            NOW,
        ),
        (
            "POST",
            "/apps/3/events",
            signed("POST", "/apps/3/events", auth(body_md5=md5(BODY))),
            BODY,
            NOW,
        ),
        # PHP: percent-encoded on the wire, decoded before verification.
        (
            "GET",
            "/apps/3/channels",
            php_style("GET", "/apps/3/channels", auth(**CHANNELS_INFO)),
            b"",
            NOW,
        ),
        # auth_version is signed as received, not required.
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", {"auth_key": KEY, "auth_timestamp": str(NOW)}),
            b"",
            NOW,
        ),
        # The timestamp window is 600 s either way, inclusive.
        ("GET", "/apps/3/channels", signed("GET", "/apps/3/channels", auth()), b"", NOW + 600),
        ("GET", "/apps/3/channels", signed("GET", "/apps/3/channels", auth()), b"", NOW - 600),
    ],
)
def test_verify_request_accepts(
    method: str, path: str, params: dict[str, str], body: bytes, now: float
) -> None:
    verify_request(
        key=KEY, secret=SECRET, method=method, path=path, params=params, body=body, now=now
    )


def without(params: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != name}


GET_SIGNED = signed("GET", "/apps/3/channels", auth())
POST_SIGNED = signed("POST", "/apps/3/events", auth(body_md5=md5(BODY)))


def bad_signature(method: str, path: str, params: dict[str, str]) -> str:
    return (
        "Invalid signature: you should have sent HmacSHA256Hex("
        + repr(request_string(method, path, params))
        + ", your_secret_key)"
    )


def expired(now: int) -> str:
    return f"Timestamp expired: given timestamp ({NOW}) not within 600s of server time ({now})"


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "now", "message"),
    [
        (
            "GET",
            "/apps/3/channels",
            without(GET_SIGNED, "auth_key"),
            b"",
            NOW,
            "Missing query parameter auth_key",
        ),
        (
            "GET",
            "/apps/3/channels",
            without(GET_SIGNED, "auth_timestamp"),
            b"",
            NOW,
            "Missing query parameter auth_timestamp",
        ),
        (
            "GET",
            "/apps/3/channels",
            without(GET_SIGNED, "auth_signature"),
            b"",
            NOW,
            "Missing query parameter auth_signature",
        ),
        ("GET", "/apps/3/channels", {}, b"", NOW, "Missing query parameter auth_key"),
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", {**auth(), "auth_key": "0" * 20}),
            b"",
            NOW,
            "Unknown auth_key",
        ),
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", {**auth(), "auth_timestamp": "1.7e9"}),
            b"",
            NOW,
            "auth_timestamp must be an integer",
        ),
        (
            "GET",
            "/apps/3/channels",
            GET_SIGNED,
            b"",
            NOW + 601,
            expired(NOW + 601),
        ),
        (
            "GET",
            "/apps/3/channels",
            GET_SIGNED,
            b"",
            NOW - 601,
            expired(NOW - 601),
        ),
        (
            "POST",
            "/apps/3/events",
            signed("POST", "/apps/3/events", auth()),
            BODY,
            NOW,
            "Missing query parameter body_md5 for a request with a body",
        ),
        (
            "POST",
            "/apps/3/events",
            POST_SIGNED,
            BODY + b" ",
            NOW,
            "body_md5 does not match the request body",
        ),
        (
            "POST",
            "/apps/3/events",
            signed("POST", "/apps/3/events", auth(body_md5=EMPTY_MD5)),
            BODY,
            NOW,
            "body_md5 does not match the request body",
        ),
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", auth(body_md5=md5(BODY))),
            b"",
            NOW,
            "body_md5 does not match the request body",
        ),
        (
            "GET",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", auth(), secret="not-the-secret"),
            b"",
            NOW,
            bad_signature("GET", "/apps/3/channels", auth()),
        ),
        # Signed for another path, method, or set of parameters.
        (
            "GET",
            "/apps/4/channels",
            GET_SIGNED,
            b"",
            NOW,
            bad_signature("GET", "/apps/4/channels", auth()),
        ),
        (
            "POST",
            "/apps/3/channels",
            signed("GET", "/apps/3/channels", auth(body_md5=EMPTY_MD5)),
            b"",
            NOW,
            bad_signature("POST", "/apps/3/channels", auth(body_md5=EMPTY_MD5)),
        ),
        (
            "GET",
            "/apps/3/channels",
            {**GET_SIGNED, "info": "user_count"},
            b"",
            NOW,
            bad_signature("GET", "/apps/3/channels", auth(info="user_count")),
        ),
        # Signing the percent-encoded value instead of the decoded one fails.
        (
            "GET",
            "/apps/3/channels",
            {
                **signed("GET", "/apps/3/channels", auth(info="user_count%2Csubscription_count")),
                "info": "user_count,subscription_count",
            },
            b"",
            NOW,
            bad_signature("GET", "/apps/3/channels", auth(info="user_count,subscription_count")),
        ),
    ],
)
def test_verify_request_refuses_with_401(
    method: str, path: str, params: dict[str, str], body: bytes, now: float, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        verify_request(
            key=KEY, secret=SECRET, method=method, path=path, params=params, body=body, now=now
        )

    assert (caught.value.status, caught.value.message) == (401, message)


@pytest.mark.parametrize("timestamp", ["9" * 400, "-" + "9" * 309])
def test_a_timestamp_past_what_a_float_holds_is_expired(timestamp: str) -> None:
    # Found by fuzzing: comparing it with the float clock raised OverflowError (HTTP 500).
    params = signed("GET", "/apps/3/channels", {**auth(), "auth_timestamp": timestamp})

    with pytest.raises(ApiError) as caught:
        verify_request(
            key=KEY,
            secret=SECRET,
            method="GET",
            path="/apps/3/channels",
            params=params,
            body=b"",
            now=NOW + 0.5,
        )

    assert caught.value.status == 401
    assert caught.value.message.startswith(f"Timestamp expired: given timestamp ({timestamp})")


@pytest.mark.parametrize(
    "make_request",
    [
        lambda c: c.trigger.make_request(["project-3"], "foo", {"some": "data"}),
        lambda c: c.trigger.make_request(["a", "b"], "my-event", "x", "123.456"),
        lambda c: c.trigger_batch.make_request([{"channel": "a", "name": "e", "data": "d"}]),
        lambda c: c.channels_info.make_request("presence-", ["user_count"]),
        lambda c: c.channels_info.make_request(),
        lambda c: c.channel_info.make_request("my-channel", ["subscription_count", "cache"]),
        lambda c: c.users_info.make_request("presence-a"),
        # Python signs this path without /apps/{id} (§5.5); it verifies as signed.
        lambda c: c.terminate_user_connections.make_request("42"),
    ],
)
def test_requests_built_by_the_python_sdk_verify(
    make_request: Callable[[object], object],
) -> None:
    client = pusher.Pusher("3", KEY, SECRET)._pusher_client
    request = make_request(client)
    params = {k: str(v) for k, v in request.query_params.items()}  # type: ignore[attr-defined]

    verify_request(
        key=KEY,
        secret=SECRET,
        method=request.method,  # type: ignore[attr-defined]
        path=request.path,  # type: ignore[attr-defined]
        params=params,
        body=request.body,  # type: ignore[attr-defined]
        now=int(params["auth_timestamp"]),
    )


# --- webhooks (§6) ---------------------------------------------------------------------


def test_webhook_signature_is_accepted_by_the_python_sdk() -> None:
    body = b'{"time_ms":%d,"events":[{"name":"channel_occupied","channel":"a"}]}' % int(
        time.time() * 1000
    )

    signature = webhook_signature(SECRET, body)

    assert signature == sign(SECRET, body.decode())
    assert pusher.Pusher("3", KEY, SECRET).validate_webhook(KEY, signature, body) is not None
    assert pusher.Pusher("3", KEY, "other").validate_webhook(KEY, signature, body) is None
