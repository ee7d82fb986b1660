"""`ressonance apps webhooks ...` (cli/webhooks.py) over the single node's SQLite queue file."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import orjson
import pytest

from ressonance import cli
from ressonance.apps.base import AppRecord
from ressonance.apps.sqlite import SqliteAppRegistry
from ressonance.protocol.webhooks import WebhookEndpoint, lane_id
from ressonance.state import WEBHOOKS_FILE
from ressonance.state.base import DeliveryAttempt
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue

Capture = pytest.CaptureFixture[str]
URL = "http://127.0.0.1:9/hooks"
LANE = lane_id("7", WebhookEndpoint(URL, ("client_event",)))


@pytest.fixture(autouse=True)
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The state directory, with app 7 (one endpoint) and two dead letters in its queue."""
    for name in list(os.environ):
        if name.startswith("RESSONANCE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    directory = tmp_path / "ressonance"
    directory.mkdir()
    asyncio.run(_fill(directory))
    return directory


async def _fill(directory: Path) -> None:
    registry = await SqliteAppRegistry.open(directory / "ressonance.db")
    hooks = [{"url": URL, "event_types": ["client_event"]}]
    await registry.create(AppRecord("7", "k", "s" * 32, settings={"webhooks": hooks}))
    await registry.close()
    queue = SqliteWebhookQueue(directory / WEBHOOKS_FILE, node_id="test")
    await queue.open()
    for index in range(2):
        queue.add([LANE], "private-a", orjson.dumps({"name": "client_event", "id": f"e{index}"}))
    await queue.record_attempt(LANE, DeliveryAttempt(1_700_000_000_000, 500, 31, 2, "HTTP 500"))
    await queue.flush()
    assert await queue.claim(LANE)
    await queue.dead_letter(LANE, await queue.read(LANE), "HTTP 500", 1_700_000_000_000)
    await queue.close()


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    status = cli.main(["apps", "webhooks", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_dead_letters_as_a_table_naming_the_queue(capsys: Capture, state: Path) -> None:
    status, out, _ = run(capsys, "dead-letters", "7")

    assert status == 0
    assert "FAILED (UTC)" in out
    assert out.count("HTTP 500") == 2
    assert "2023-11-14 22:13:20" in out
    assert f"Webhook queue: {state / WEBHOOKS_FILE}, app store: sqlite:///" in out


def test_replay_by_id_then_all_puts_them_back(capsys: Capture) -> None:
    status, out, err = run(capsys, "dead-letters", "7", "--json")
    assert status == 0
    assert err.startswith("ressonance: webhook queue: ")
    letters = json.loads(out)["dead_letters"]
    assert [d["event"]["id"] for d in letters] == ["e0", "e1"]
    assert letters[0]["endpoint"] == URL

    assert run(capsys, "replay", "7", letters[0]["id"])[1].startswith("Replayed 1 dead letter")
    status, out, _ = run(capsys, "replay", "7", "--all", "--json")
    assert (status, json.loads(out)) == (0, {"replayed": 1})
    assert "No dead letters." in run(capsys, "dead-letters", "7")[1]


@pytest.mark.parametrize("argv", [["replay", "7"], ["replay", "7", "1", "--all"]])
def test_replay_needs_ids_or_all(capsys: Capture, argv: list[str]) -> None:
    status, _, err = run(capsys, *argv)
    assert (status, err) == (2, "ressonance: replay: give dead letter ids or --all (one of them)\n")


def test_deliveries_of_one_endpoint(capsys: Capture) -> None:
    status, out, _ = run(capsys, "deliveries", "7", "--endpoint", "0")
    assert status == 0
    assert f"Endpoint 0: {URL}" in out
    assert "31 ms" in out

    status, out, _ = run(capsys, "deliveries", "7", "--json")
    [log] = json.loads(out)["endpoints"]
    assert log["attempts"] == [
        {
            "at_ms": 1_700_000_000_000,
            "status": 500,
            "latency_ms": 31,
            "events": 2,
            "error": "HTTP 500",
        }
    ]


def test_an_unknown_endpoint_or_app(capsys: Capture) -> None:
    assert run(capsys, "deliveries", "7", "--endpoint", "3")[0] == 2
    status, _, err = run(capsys, "dead-letters", "9")
    assert status == 1
    assert "webhook queue: " in err
