"""Webhook endpoints (Soketi's shape), the lanes of a channel, and the events and body (§6)."""

from __future__ import annotations

import json
import re
import time

import orjson
import pusher
import pytest

from ressonance.protocol.channels import classify
from ressonance.protocol.errors import ConfigError
from ressonance.protocol.signing import webhook_signature
from ressonance.protocol.webhooks import (
    EVENT_TYPES,
    MAX_ENDPOINTS,
    NO_HOOKS,
    ChannelHooks,
    WebhookEndpoint,
    channel_hooks,
    client_event_json,
    endpoints_json,
    event_ids,
    event_json,
    lane_app,
    lane_endpoint,
    lane_id,
    parse_endpoints,
    webhook_body,
)

URL = "https://app.example.com/pusher/webhooks"


def endpoint(**fields: object) -> dict[str, object]:
    return {"url": URL, "event_types": ["channel_occupied"], **fields}


# --- configuration --------------------------------------------------------------------------


def test_a_soketi_endpoint_is_read_and_written_back_unchanged() -> None:
    soketi = [
        {
            "url": URL,
            "event_types": ["channel_occupied", "member_added"],
            "filter": {"channel_name_starts_with": "presence-", "channel_name_ends_with": "-x"},
            "headers": {"Authorization": "Bearer t0ken"},
        },
        {"url": "http://127.0.0.1:8080/hook", "event_types": list(EVENT_TYPES)},
    ]
    endpoints = parse_endpoints(soketi)
    assert endpoints[0] == WebhookEndpoint(
        URL,
        ("channel_occupied", "member_added"),
        "presence-",
        "-x",
        (("Authorization", "Bearer t0ken"),),
    )
    assert endpoints_json(endpoints) == soketi


def test_checked_endpoints_pass_through() -> None:
    endpoints = parse_endpoints([endpoint()])
    assert parse_endpoints(endpoints) is endpoints


def test_header_values_stay_out_of_reprs() -> None:
    (checked,) = parse_endpoints([endpoint(headers={"X-Token": "s3cret"})])
    assert "s3cret" not in repr(checked)


def test_the_id_is_a_digest_of_the_url_only() -> None:
    (a,) = parse_endpoints([endpoint()])
    (b,) = parse_endpoints([endpoint(event_types=["cache_miss"], headers={"X-A": "b"})])
    assert a.id == b.id
    assert re.fullmatch(r"[0-9a-f]{12}", a.id)
    assert URL not in a.id


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"url": URL}, "webhooks: must be a list of endpoints"),
        ([endpoint()] * (MAX_ENDPOINTS + 1), f"webhooks: at most {MAX_ENDPOINTS} endpoints"),
        (["https://x"], r"webhooks\[0\]: must be an object with url and event_types"),
        ([endpoint(), endpoint()], r"webhooks\[1\].url: the same URL as webhooks\[0\]"),
        ([endpoint(colour=1)], r"webhooks\[0\].colour: unknown key \(expected url, event_types"),
        ([endpoint(lambda_function="f")], r"\[0\].lambda_function: AWS Lambda endpoints are not"),
        ([endpoint(**{"lambda": {}})], r"\[0\].lambda: AWS Lambda endpoints are not supported"),
        ([{"event_types": ["cache_miss"]}], r"webhooks\[0\].url: required"),
        ([{"url": URL}], r"webhooks\[0\].event_types: required, a list of channel_occupied"),
        ([endpoint(url=1)], r"\[0\].url: must be an http:// or https:// URL"),
        ([endpoint(url="")], r"\[0\].url: must be an http:// or https:// URL"),
        ([endpoint(url="ftp://x.example/")], r"\[0\].url: must be an http:// or https:// URL"),
        ([endpoint(url="https://" + "a" * 2048)], r"\[0\].url: at most 2048 characters"),
        ([endpoint(url="https://a.example/ x")], r"\[0\].url: must not contain spaces"),
        ([endpoint(url="https://a.example/\x7f")], r"\[0\].url: must not contain spaces"),
        ([endpoint(url="https://a.example:99999/")], r"\[0\].url: not a valid URL"),
        ([endpoint(url="https://[::1/")], r"\[0\].url: not a valid URL"),
        ([endpoint(url="https:///path")], r"\[0\].url: has no host"),
        ([endpoint(url="https://u:p@a.example/")], r"\[0\].url: must not hold credentials"),
        ([endpoint(url="https://u@a.example/")], r"\[0\].url: must not hold credentials"),
        ([endpoint(url="https://a.example/#x")], r"\[0\].url: must not have a #fragment"),
        ([endpoint(event_types=[])], r"\[0\].event_types: must be a non-empty list of"),
        ([endpoint(event_types="cache_miss")], r"\[0\].event_types: must be a non-empty list"),
        (
            [endpoint(event_types=["cache_miss", "channel_existence"])],
            r"\[0\].event_types\[1\]: unknown event type 'channel_existence' \(expected one of",
        ),
        ([endpoint(event_types=[7])], r"\[0\].event_types\[0\]: unknown event type 7"),
        (
            [endpoint(event_types=["cache_miss", "cache_miss"])],
            r"\[0\].event_types\[1\]: cache_miss is listed twice",
        ),
        ([endpoint(filter="presence-")], r"\[0\].filter: must be an object with"),
        (
            [endpoint(filter={"channel_name_contains": "x"})],
            r"\[0\].filter.channel_name_contains: unknown key",
        ),
        (
            [endpoint(filter={"channel_name_starts_with": 1})],
            r"\[0\].filter.channel_name_starts_with: must be a string of at most 200",
        ),
        ([endpoint(headers=["X-A: b"])], r"\[0\].headers: must be an object of header names"),
        (
            [endpoint(headers={f"X-{i}": "v" for i in range(21)})],
            r"\[0\].headers: at most 20 headers",
        ),
        ([endpoint(headers={"X A": "b"})], r"\[0\].headers: 'X A' is not a valid header name"),
        ([endpoint(headers={"": "b"})], r"\[0\].headers: '' is not a valid header name"),
        (
            [endpoint(headers={"content-type": "text/plain"})],
            r"\[0\].headers.content-type: may not be set",
        ),
        (
            [endpoint(headers={"X-Pusher-Signature": "x"})],
            r"\[0\].headers.X-Pusher-Signature: may not be set",
        ),
        ([endpoint(headers={"Host": "x"})], r"\[0\].headers.Host: may not be set"),
        ([endpoint(headers={"X-A": 1})], r"\[0\].headers.X-A: must be a string of at most 1024"),
        ([endpoint(headers={"X-A": "v" * 1025})], r"\[0\].headers.X-A: must be a string of at"),
        ([endpoint(headers={"X-A": "a\r\nHost: b"})], r"\[0\].headers.X-A: must not contain line"),
    ],
)
def test_bad_endpoints_are_refused_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_endpoints(value)


def test_a_header_value_is_never_shown_in_a_message() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_endpoints([endpoint(headers={"X-A": "s3cret\n"})])
    assert "s3cret" not in str(refused.value)


def test_the_message_starts_where_the_value_was_given() -> None:
    with pytest.raises(ConfigError, match=r"^apps\[2\].webhooks\[0\].url: required"):
        parse_endpoints([{}], "apps[2].webhooks")


# --- which lanes take the events of a channel ---------------------------------------------------


def test_lanes_name_the_app_and_the_endpoint() -> None:
    (checked,) = parse_endpoints([endpoint()])
    lane = lane_id("42", checked)
    assert lane == f"42:{checked.id}"
    assert (lane_app(lane), lane_endpoint(lane)) == ("42", checked.id)


def test_each_event_goes_to_the_endpoints_whose_types_and_filter_take_it() -> None:
    everything, presence_only, counts = parse_endpoints(
        [
            {"url": "http://a.example/", "event_types": list(EVENT_TYPES)},
            {
                "url": "http://b.example/",
                "event_types": ["member_added", "channel_occupied", "cache_miss"],
                "filter": {"channel_name_starts_with": "presence-"},
            },
            {
                "url": "http://c.example/",
                "event_types": ["subscription_count"],
                "filter": {"channel_name_ends_with": "-live"},
            },
        ]
    )
    a, b, c = (lane_id("1", e) for e in (everything, presence_only, counts))
    endpoints = (everything, presence_only, counts)
    presence = channel_hooks("1", endpoints, classify("presence-cache-room"))
    assert presence == ChannelHooks(
        occupied=(a, b),
        vacated=(a,),
        member_added=(a, b),
        member_removed=(a,),
        subscription_count=(),
        client_event=(a,),
        cache_miss=(a, b),
    )
    assert presence.lanes() == (a, b)
    assert presence.has_store_events
    public = channel_hooks("1", endpoints, classify("scores-live"))
    assert public == ChannelHooks(
        occupied=(a,), vacated=(a,), subscription_count=(a, c), client_event=(a,)
    )
    assert public.lanes() == (a, c)


def test_no_endpoints_and_user_channels_have_no_hooks() -> None:
    (checked,) = parse_endpoints([endpoint(event_types=list(EVENT_TYPES))])
    assert channel_hooks("1", (), classify("orders")) is NO_HOOKS
    assert channel_hooks("1", (checked,), classify("#server-to-user-7")) is NO_HOOKS
    assert not NO_HOOKS.has_store_events
    assert NO_HOOKS.lanes() == ()


def test_client_events_and_cache_misses_are_not_store_events() -> None:
    (checked,) = parse_endpoints([endpoint(event_types=["client_event", "cache_miss"])])
    hooks = channel_hooks("1", (checked,), classify("private-cache-x"))
    assert hooks.client_event
    assert hooks.cache_miss
    assert not hooks.has_store_events


# --- events and the body ----------------------------------------------------------------------


def test_events_are_pushers_objects_with_an_id() -> None:
    assert orjson.loads(event_json("member_added", "presence-a", "e1", user_id="7")) == {
        "name": "member_added",
        "channel": "presence-a",
        "user_id": "7",
        "id": "e1",
    }


@pytest.mark.parametrize(
    ("data", "text"), [("plain", "plain"), ({"x": [1, 2]}, '{"x":[1,2]}'), (3, "3")]
)
def test_a_client_events_data_is_a_string(data: object, text: str) -> None:
    event = orjson.loads(client_event_json("private-a", "client-x", data, "1.2", None, "e2"))
    assert event == {
        "name": "client_event",
        "channel": "private-a",
        "event": "client-x",
        "data": text,
        "socket_id": "1.2",
        "id": "e2",
    }


def test_a_presence_client_event_names_its_user() -> None:
    event = orjson.loads(client_event_json("presence-a", "client-x", "", "1.2", "u7", "e3"))
    assert event["user_id"] == "u7"


def test_the_body_is_accepted_by_the_pypi_sdk() -> None:
    events = [event_json("channel_occupied", "a", "e1"), event_json("channel_vacated", "a", "e2")]
    body = webhook_body(int(time.time() * 1000), events)
    sdk = pusher.Pusher(app_id="1", key="key", secret="secret")
    received = sdk.validate_webhook("key", webhook_signature("secret", body), body.decode())
    assert received is not None
    assert [event["name"] for event in received["events"]] == [
        "channel_occupied",
        "channel_vacated",
    ]
    assert json.loads(body) == received


def test_an_empty_batch_is_valid_json() -> None:
    assert json.loads(webhook_body(5, [])) == {"time_ms": 5, "events": []}


def test_event_ids_are_24_hex_digits_and_do_not_repeat() -> None:
    new_id = event_ids()
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
