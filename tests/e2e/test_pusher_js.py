"""pusher-js 8 (node build) and the npm `pusher` server SDK against a running node.

Each test runs one scenario script from tests/e2e/js/ and checks what the real client
library handed to the application.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.node_clients import events, names, run_scenario

pytestmark = pytest.mark.e2e

SOCKET_ID = re.compile(r"^\d+\.\d+$")


def test_public_channel_receives_api_events(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_public.mjs") as seen:
        first, second = seen["events"]["first"], seen["events"]["second"]
        assert SOCKET_ID.match(seen["first_socket_id"])
        assert seen["trigger_response"]["status"] == 200
        assert isinstance(seen["trigger_response"]["body"], dict)
        assert events(first, "order-shipped") == [
            {"order_id": 42, "items": ["book", "pen"], "note": 'héllo ✓ "quoted"'}
        ]
        assert events(first, "plain-text") == ["just a string"]
        # socket_id excludes exactly that connection
        assert events(second, "not-for-first") == [{"n": 1}]
        assert names(first) == ["order-shipped", "plain-text", "for-both"]
        assert names(second) == ["not-for-first", "for-both"]
        # subscription_count (enabled for the app): on every subscribe and unsubscribe
        counts = [d["subscription_count"] for d in events(first, "pusher:subscription_count")]
        assert counts == [1, 2, 1]
        assert seen["clients"]["first"]["connection_errors"] == []
        assert seen["first_state"] == "connected"


def test_private_channel_authorized_by_http_endpoint(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_private.mjs") as seen:
        alice = seen["events"]["alice"]
        first_auth = seen["auth_requests"][0]
        assert first_auth["content_type"] == "application/x-www-form-urlencoded"
        assert first_auth["form"]["socket_id"] == seen["alice_socket_id"]
        assert first_auth["form"]["channel_name"] == seen["channel"]
        assert events(alice, "invoice-paid") == [
            {"invoice": "INV-7", "cents": 1999},
            {"invoice": "INV-8", "cents": 500},
        ]
        # the backend's 403 reaches the app as a subscription error
        refused = events(seen["events"]["forbidden"], "pusher:subscription_error")
        assert [e["status"] for e in refused] == [403]
        # a token signed for alice's socket does not let mallory in ...
        assert seen["mallory_subscribed"] is False
        assert "invoice-paid" not in names(seen["events"]["mallory"])
        # ... the app is told so, and mallory's connection survives
        mallory_errors = events(seen["events"]["mallory"], "pusher:subscription_error")
        assert mallory_errors or seen["clients"]["mallory"]["connection_errors"]
        assert seen["mallory_state"] == "connected"
        assert seen["alice_state"] == "connected"
        assert seen["clients"]["alice"]["connection_errors"] == []


NAMES = {"alice": "Alice", "bob": 'Bøb 🚀 "the builder"'}


def _member(user: str) -> dict[str, object]:
    return {"id": user, "info": {"id": user, "name": NAMES[user]}}


def test_presence_roster_and_multi_tab_membership(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_presence.mjs") as seen:
        roster, ev = seen["roster"], seen["events"]
        alice, bob = _member("alice"), _member("bob")
        assert roster["alice1_on_join"] == {"count": 1, "me": alice, "members": [alice]}
        assert roster["bob_on_join"] == {"count": 2, "me": bob, "members": [alice, bob]}
        assert roster["alice2_on_join"] == {"count": 2, "me": alice, "members": [alice, bob]}
        # member_added once per user: bob's arrival only, never alice's second tab
        assert events(ev["alice1"], "pusher:member_added") == [bob]
        assert events(ev["bob"], "pusher:member_added") == []
        assert events(ev["alice2"], "pusher:member_added") == []
        # member_removed only when alice's last connection left (after barrier 2)
        assert events(ev["bob"], "pusher:member_removed") == [alice]
        bob_timeline = [
            e["data"]["marker"] if e["event"] == "barrier" else e["event"]
            for e in ev["bob"]
            if e["event"] in ("barrier", "pusher:member_removed")
        ]
        assert bob_timeline == ["barrier-1", "barrier-2", "pusher:member_removed", "barrier-3"]
        assert events(ev["alice1"], "pusher:member_removed") == []
        assert roster["bob_after_second_tab_closed"]["count"] == 2
        assert roster["bob_at_end"] == {"count": 1, "me": bob, "members": [bob]}
        assert seen["http_users"] == {
            "alice_and_bob": ["alice", "bob"],
            "after_second_tab": ["alice", "bob"],
            "after_second_tab_closed": ["alice", "bob"],
            "at_end": ["bob"],
        }
        # subscription counts are never sent on presence channels
        for who in ("alice1", "bob", "alice2"):
            assert events(ev[who], "pusher:subscription_count") == [], who


def test_client_events_reach_others_but_not_the_sender(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_client_events.mjs") as seen:
        ev = seen["events"]
        assert seen["trigger_returned"] == {"alice": True, "bob": True}
        assert events(ev["bob"], "client-typing") == [{"who": "alice", "text": "hé ✓"}]
        assert events(ev["alice"], "client-reply") == [{"who": "bob"}]
        # never echoed to the sender
        assert names(ev["alice"]) == ["client-reply", "barrier"]
        assert names(ev["bob"]) == ["client-typing", "barrier"]
        # on presence channels the sender's user_id comes along
        assert events(ev["bob_presence"], "client-wave") == [{"hand": "right"}]
        assert seen["presence_metadata"]["bob_presence"] == [{"user_id": "alice"}]
        assert "client-wave" not in names(ev["alice_presence"])
        assert seen["states"] == {"alice": "connected", "bob": "connected"}


def _watch(entries: list[dict[str, Any]], name: str, user: str) -> list[int]:
    """Positions of the watchlist events `name` that mention `user`."""
    return [i for i, e in enumerate(entries) if e["name"] == name and user in e["user_ids"]]


def test_signin_server_to_user_and_watchlist(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_user.mjs") as seen:
        alice, bob = seen["users"]["alice"], seen["users"]["bob"]
        assert seen["alice_user_data"] == {
            "id": alice,
            "user_info": {"name": "Alice"},
            "watchlist": [bob],
        }
        assert seen["signin_errors"] == {"alice": [], "bob": [], "bob2": []}
        assert seen["send_to_user_status"] == 200
        assert seen["user_events"]["alice"] == [
            {"event": "invoice-ready", "data": {"invoice": "INV-1", "total": "9.99"}},
            {"event": "barrier", "data": {"n": 1}},
        ]
        assert seen["user_events"]["bob"] == []
        watch = seen["watchlist"]["alice"]
        cut = seen["alice_watchlist_before_last_bob_leaves"]
        online = _watch(watch, "online", bob)
        assert online, f"alice never saw bob online: {watch}"
        # bob's second tab closing leaves bob online
        assert [i for i in _watch(watch, "offline", bob) if online[0] < i < cut] == []
        # his last connection closing makes him offline
        assert [i for i in _watch(watch, "offline", bob) if i >= cut]
        assert _watch(seen["watchlist"]["bob"], "online", alice)
        # terminateUserConnections closes alice's connection and pusher-js stays away
        assert seen["terminate"] == {"status": 200, "body": {}}
        assert "connected" not in seen["alice_states_after_terminate"]


def test_encrypted_channel_decrypts_sdk_event(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_encrypted.mjs") as seen:
        assert seen["auth_requests"][0]["response_keys"] == ["auth", "shared_secret"]
        assert seen["trigger_response"]["status"] == 200
        assert events(seen["events"], "secret-note") == [{"pin": "4711", "owner": "Alice ✓"}]
        # the server relayed the ciphertext untouched
        assert [sorted(w["data"]) for w in seen["wire"]] == [["ciphertext", "nonce"]]
        assert seen["plaintext_on_wire"] is False


def test_npm_sdk_http_api_while_clients_are_connected(server: RunningServer) -> None:
    with run_scenario(server, "sdk_http_api.mjs") as seen:
        n, http = seen["names"], seen["http"]
        assert all(r["status"] == 200 for r in http.values()), http
        assert http["channels_before"]["body"] == {"channels": {}}
        assert http["channels"]["body"] == {
            "channels": {n["public"]: {}, n["private"]: {}, n["presence"]: {}}
        }
        assert http["presence_channels"]["body"] == {"channels": {n["presence"]: {"user_count": 2}}}
        assert http["public_channel"]["body"] == {"occupied": True, "subscription_count": 2}
        assert http["presence_channel"]["body"] == {"occupied": True, "user_count": 2}
        assert http["empty_channel"]["body"] == {"occupied": False}
        users = sorted(u["id"] for u in http["presence_users"]["body"]["users"])
        assert users == ["alice", "bob"]
        assert http["trigger_with_info"]["body"] == {
            "channels": {
                n["public"]: {"subscription_count": 2},
                n["presence"]: {"user_count": 2},
            }
        }
        assert names(seen["events"]["bob_public"]) == ["with-info", "batch-1", "batch-2"]
        assert http["channels_after"]["body"] == {"channels": {}}


def test_ping_pong_keepalive_and_unknown_key_refusal(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_connection.mjs") as seen:
        # pusher:ping every 300 ms is answered; the connection is never replaced
        assert seen["pongs"] >= 3
        assert seen["idle_socket_id_after"] == seen["idle_socket_id"]
        assert seen["idle_state_after"] == "connected"
        assert seen["clients"]["idle"]["connection_errors"] == []
        # an unknown key: error 4001, and pusher-js does not retry
        stranger = seen["clients"]["stranger"]
        codes = [
            (e.get("data") or e.get("error", {}).get("data") or {}).get("code")
            for e in stranger["connection_errors"]
        ]
        assert 4001 in codes, stranger
        assert stranger["states"].count("connecting") == 1, stranger
        assert seen["stranger_final_state"] == "disconnected"


def test_cache_channel_replays_last_event(server: RunningServer) -> None:
    with run_scenario(server, "pusherjs_cache.mjs") as seen:
        ev = seen["events"]
        assert seen["cache_info"]["status"] == 200
        assert seen["cache_info"]["body"]["cache"]["data"] == '{"home":2,"away":0}'
        # the late subscriber gets the last event right after subscribing, then live ones
        assert events(ev["scores"], "score") == [{"home": 2, "away": 0}, {"home": 2, "away": 1}]
        assert names(ev["scores"]) == ["score", "score"]
        assert len(events(ev["empty"], "pusher:cache_miss")) == 1
        assert names(ev["empty"]) == []
