"""Laravel Echo 2 (ESM) on pusher-js 8 against a running node, as a Laravel app uses it.

Events are triggered the way Laravel's broadcaster does it, through the HTTP API with the
npm `pusher` SDK; private and presence channels are authorized by a tiny backend on
/broadcasting/auth.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.node_clients import run_scenario

pytestmark = pytest.mark.e2e


def test_echo_channel_listen(server: RunningServer) -> None:
    with run_scenario(server, "echo_public.mjs") as seen:
        got = seen["received"]
        # '.OrderShipped' is the raw event name, 'OrderShipped' means App\Events\OrderShipped
        assert got["dotted"] == [{"order": {"id": 1, "total": "10.00"}}]
        assert got["namespaced"] == [{"order": {"id": 2, "total": "20.00"}}, {"order": {"id": 4}}]
        assert [e["event"] for e in got["all"]] == [
            ".OrderShipped",
            "OrderShipped",
            ".OrderShipped",
            "OrderShipped",
        ]
        assert seen["status"] == "connected"
        assert seen["connection"]["connection_errors"] == []


def test_echo_private_listen_and_notifications(server: RunningServer) -> None:
    with run_scenario(server, "echo_private.mjs") as seen:
        got = seen["received"]
        assert got["order_paid"] == [{"order": {"id": 99}}]
        assert got["notifications"] == [
            {
                "id": "b6f1c2d0-0000-4000-8000-000000000001",
                "type": "App\\Notifications\\InvoicePaid",
                "amount": 42,
            }
        ]
        assert got["encrypted"] == [{"key_id": "k-2"}]
        assert [e["status"] for e in got["errors"]] == [403]
        requests = seen["auth_requests"]
        assert {r["path"] for r in requests} == {"/broadcasting/auth"}
        vault = [r for r in requests if r["form"]["channel_name"].startswith("private-encrypted-")]
        assert [r["response_keys"] for r in vault] == [["auth", "shared_secret"]]
        assert all(r["headers"].get("x-csrf-token") == "e2e-csrf" for r in requests)
        assert all(r["form"]["socket_id"] == seen["socket_id"] for r in requests)
        assert seen["status"] == "connected"


def test_echo_whisper_between_two_instances(server: RunningServer) -> None:
    with run_scenario(server, "echo_whisper.mjs") as seen:
        got = seen["received"]
        assert got["bob"]["typing"] == [{"name": "Alice", "typing": True}]
        assert got["alice"]["reply"] == [{"name": "Bob", "text": "hi ✓"}]
        # whispers are not echoed to the instance that sent them
        assert got["alice"]["typing"] == []
        assert got["bob"]["reply"] == []
        assert got["alice"]["barrier"] == got["bob"]["barrier"] == [{"n": 1}]


def test_echo_presence_here_joining_leaving(server: RunningServer) -> None:
    with run_scenario(server, "echo_presence.mjs") as seen:
        log = seen["callbacks"]
        # integer ids, as Laravel's presence auth sends them, come back as integers
        alice, bob = {"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}
        assert seen["members_me"]["alice"] == {"id": 1, "info": alice}
        assert log["here"]["alice"] == [[alice]]
        assert log["here"]["bob"] == [[alice, bob]]
        assert log["here"]["bob_tab2"] == [[alice, bob]]
        # bob's second tab neither joins again nor leaves on its own
        assert log["joining"]["alice"] == [bob]
        assert seen["alice_leaving_while_bob_had_a_tab"] == 0
        assert log["leaving"]["alice"] == [bob]
        assert log["joining"]["bob"] == log["leaving"]["bob"] == []
        assert log["barrier"]["alice"] == [1, 2, 3]
