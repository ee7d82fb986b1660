"""The tables and statements of the single node's webhook queue (state/sqlite_webhooks.py).

Tables: `webhook_events` (the lanes: one row per event and endpoint, positions never
reused), `webhook_leases` (which process sends a lane, until when), `webhook_dead_letters`
and `webhook_attempts` (the delivery log). Created when the queue opens (IF NOT EXISTS);
`OPS` are the statements of the group-committed buffer, by the name of the op.
"""

from __future__ import annotations

from typing import Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS webhook_events (
  position INTEGER PRIMARY KEY AUTOINCREMENT, lane TEXT NOT NULL, channel TEXT NOT NULL,
  event BLOB NOT NULL, produced_ms INTEGER NOT NULL, due_ms INTEGER NOT NULL DEFAULT 0,
  cancel_key TEXT);
CREATE INDEX IF NOT EXISTS webhook_events_lane ON webhook_events (lane, position);
CREATE TABLE IF NOT EXISTS webhook_leases (
  lane TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT, app_id TEXT NOT NULL, lane TEXT NOT NULL,
  channel TEXT NOT NULL, event BLOB NOT NULL, produced_ms INTEGER NOT NULL,
  failed_ms INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_dead_letters_app ON webhook_dead_letters (app_id, id);
CREATE TABLE IF NOT EXISTS webhook_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, lane TEXT NOT NULL, at_ms INTEGER NOT NULL,
  status INTEGER NOT NULL, latency_ms INTEGER NOT NULL, events INTEGER NOT NULL,
  error TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_attempts_lane ON webhook_attempts (lane, id);
"""
INSERT: Final = (
    "INSERT INTO webhook_events (lane, channel, event, produced_ms, due_ms, cancel_key) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
EVENT_COLUMNS: Final = "position, channel, event, produced_ms, due_ms, cancel_key"

OPS: Final = {
    "insert": INSERT,
    "delete": "DELETE FROM webhook_events WHERE position = ?",
    "unkey": "UPDATE webhook_events SET cancel_key = NULL WHERE position = ?",
    "attempt": (
        "INSERT INTO webhook_attempts (lane, at_ms, status, latency_ms, events, error) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "trim": (
        "DELETE FROM webhook_attempts WHERE lane = ? AND id <= (SELECT id FROM "
        "webhook_attempts WHERE lane = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
    ),
}
