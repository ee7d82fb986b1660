"""The webhook queue of a single node: SQLite in the state directory (`webhooks.db`).

Used with `--state memory://`: presence lives in this process, so it decides cancellations
itself (`cancel`, `fire`) from `_delayed`, a map of its delayed events still cancellable
(key -> position), loaded from the file when it opens. Several processes may share the file
(two single nodes with one state directory): positions come from SQLite, leases keep each
lane to one sender.

Rules:
1. Group commit: `record`, `cancel`, `fire` and `add` only append to `_ops` (no I/O, no
   waiting); `flush` writes them in one transaction, in order. A delayed event not written
   yet is known by a token (a negative number) until `flush` learns its position, so it
   can be cancelled before it is written. Positions never repeat (AUTOINCREMENT): a worker
   reading "after position p" never misses a later event. A crash loses the ops not yet
   flushed. A queue in memory opens its database on first use (a node that never sends
   webhooks never starts sqlite's thread).
2. WAL journal, `synchronous = FULL`: a flushed transaction survives a crash of the process
   and of the machine.
3. One connection, one statement sequence at a time (`_lock`): a read never lands inside
   another coroutine's transaction.
4. Leases (`claim`) are rows with an owner and an end time (the injected clock, in ms), so
   several processes opening one file still work each lane one at a time.
5. The file is 0600 in a 0700 directory (it holds client event payloads); a dead-letter
   store keeps the newest `dead_letter_limit` per app, the delivery log `LOG_LIMIT` per lane.
6. At most `MAX_OPS` ops wait for a flush; beyond that the oldest are dropped and counted in
   `dropped` (a disk that refuses writes must not take the node's memory with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import aiosqlite

from ressonance.protocol.webhooks import lane_app
from ressonance.state.base import DeadLetter, DeliveryAttempt, LaneDepth, QueuedEvent
from ressonance.state.sqlite_webhook_schema import EVENT_COLUMNS, INSERT, OPS, SCHEMA

LOG_LIMIT: Final = 100
MAX_OPS: Final = 100_000
BUSY_TIMEOUT_MS: Final = 10_000
Op = tuple[str, tuple[Any, ...]]


def open_file(path: Path) -> str:
    """Make `path`'s directory (0700) and the file (0600) if missing; the path as text."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)
    return str(path)


class SqliteWebhookQueue:
    """A `WebhookQueue` in one SQLite file (or in memory, for tests, with `path=None`)."""

    def __init__(
        self,
        path: Path | None,
        *,
        node_id: str,
        clock: Callable[[], float] = time.time,
        lease_ttl: float = 10.0,
        dead_letter_limit: int = 100_000,
    ) -> None:
        self.path = path
        self.node_id = node_id
        self.clock = clock
        self.lease_ms = int(lease_ttl * 1000)
        self.dead_letter_limit = dead_letter_limit
        self.wake: Callable[[], None] = lambda: None
        self.dropped = 0
        self._db: aiosqlite.Connection | None = None
        self._ops: list[Op] = []
        self._delayed: dict[str, int] = {}
        self._token = 0  # the last token given to a delayed event not written yet
        self._written: dict[int, int] = {}  # token -> position, from the last flush
        self._fired: set[int] = set()  # fired here, until delivered or given up
        self._once: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._opening = asyncio.Lock()
        self._closed = False

    # --- opening and closing ------------------------------------------------------------

    async def open(self) -> None:
        async with self._opening:  # two first uses at once open one database
            if self._db is None:
                await self._open()

    async def _open(self) -> None:
        where = ":memory:" if self.path is None else open_file(self.path)
        db = await aiosqlite.connect(where, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")
            await db.executescript(SCHEMA)
            await self._load(db)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def _load(self, db: aiosqlite.Connection) -> None:
        """The delayed events still cancellable, as the last run left them."""
        sql = "SELECT cancel_key, position FROM webhook_events WHERE cancel_key IS NOT NULL"
        async with db.execute(sql) as rows:
            stored = {str(key): int(position) for key, position in await rows.fetchall()}
        self._delayed = stored | self._delayed  # what this process recorded already wins

    async def close(self) -> None:
        """Write what is buffered and close; the queue is not opened again."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                await self.flush()
        self._closed = True
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                await db.close()

    async def _connected(self) -> aiosqlite.Connection:
        """The database, opened on first use (a queue in memory is used before `open`)."""
        if self._closed:
            raise RuntimeError("the webhook queue is closed")
        if self._db is None:
            await self.open()
        assert self._db is not None
        return self._db

    # --- producing (no I/O) ---------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _op(self, kind: str, *args: object) -> None:
        if not self._ops:
            self.wake()
        if len(self._ops) >= MAX_OPS:
            del self._ops[0]
            self.dropped += 1
        self._ops.append((kind, args))

    def record(self, lane: str, channel: str, event: bytes, due_ms: int = 0, key: str = "") -> None:
        """Buffer one event for `lane`; with `key`, a delayed event that `cancel` can undo."""
        if self._db is None and self.path is not None:  # what the file delayed: open first
            raise RuntimeError("the webhook queue is not open")
        token = 0
        if key:
            self.cancel(key)
            self._token -= 1
            token = self._delayed[key] = self._token
        self._op("insert", token, lane, channel, event, self._now_ms(), due_ms, key or None)

    def cancel(self, key: str) -> bool:
        """Undo the delayed event `key`; False when there is none (it fired, or never was)."""
        ref = self._delayed.pop(key, None)
        if ref is None:
            return False
        self._op("delete", ref)
        return True

    def add(
        self,
        lanes: Sequence[str],
        channel: str,
        event: bytes,
        *,
        dedupe: str = "",
        dedupe_seconds: float = 0.0,
    ) -> None:
        if dedupe:
            now = self.clock()
            if self._once.get(dedupe, 0.0) > now:
                return
            self._once = {k: t for k, t in self._once.items() if t > now}
            self._once[dedupe] = now + dedupe_seconds
        for lane in lanes:
            self.record(lane, channel, event)

    async def fire(self, lane: str, event: QueuedEvent) -> bool:
        position = int(event.position)
        ref = self._delayed.get(event.key) if event.key else None
        if ref is not None and self._position(ref) == position:
            del self._delayed[event.key]
            self._op("unkey", ref)
            self._fired.add(position)
            return True
        # Fired before (here, or by an earlier run: its key is cleared in the file) and read
        # again; otherwise it was cancelled (or replaced), and leaves the lane.
        return position in self._fired or not event.key

    def _position(self, ref: int) -> int:
        """The position of a delayed event (a token until it is written; 0: unknown)."""
        return ref if ref > 0 else self._written.get(ref, 0)

    async def flush(self) -> None:
        if not self._ops:
            return
        ops, self._ops = self._ops, []
        written: dict[int, int] = {}
        try:
            async with self._transaction() as db:
                for kind, args in ops:
                    await self._apply(db, kind, args, written)
        except BaseException:
            self._ops[:0] = ops  # kept for the next flush, in order
            raise
        self._written = written
        for key, ref in list(self._delayed.items()):  # tokens written become positions
            if ref in written:
                self._delayed[key] = written[ref]

    async def _apply(
        self, db: aiosqlite.Connection, kind: str, args: tuple[Any, ...], written: dict[int, int]
    ) -> None:
        if kind == "insert":
            token, *row = args
            cursor = await db.execute(INSERT, row)
            if token:
                written[int(token)] = int(cursor.lastrowid or 0)
            return
        if kind in ("delete", "unkey"):
            ref = int(args[0])
            position = ref if ref > 0 else written.get(ref) or self._written.get(ref, 0)
            await db.execute(OPS[kind], (position,))
            return
        await db.execute(OPS[kind], args)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on the one connection (`_lock`)."""
        async with self._lock:
            db = await self._connected()
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _fetch(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query, never in the middle of another coroutine's transaction."""
        async with self._lock:
            db = await self._connected()
            async with db.execute(sql, args) as rows:
                return [tuple(row) for row in await rows.fetchall()]

    # --- working a lane -------------------------------------------------------------------

    async def lanes(self) -> list[str]:
        rows = await self._fetch("SELECT DISTINCT lane FROM webhook_events")
        return sorted(str(row[0]) for row in rows)

    async def claim(self, lane: str) -> bool:
        now = self._now_ms()
        async with self._transaction() as db:
            sql = "SELECT owner, until_ms FROM webhook_leases WHERE lane = ?"
            async with db.execute(sql, (lane,)) as rows:
                row = await rows.fetchone()
            if row is not None and row[0] != self.node_id and int(row[1]) > now:
                return False
            await db.execute(
                "INSERT OR REPLACE INTO webhook_leases (lane, owner, until_ms) VALUES (?, ?, ?)",
                (lane, self.node_id, now + self.lease_ms),
            )
        return True

    async def release(self, lane: str, *, if_empty: bool = False) -> bool:
        async with self._transaction() as db:
            if if_empty and (self._pending(lane) or await _holds_events(db, lane)):
                return False
            cursor = await db.execute(
                "DELETE FROM webhook_leases WHERE lane = ? AND owner = ?", (lane, self.node_id)
            )
            return cursor.rowcount > 0

    def _pending(self, lane: str) -> bool:
        return any(kind == "insert" and args[1] == lane for kind, args in self._ops)

    async def read(self, lane: str, after: str = "", limit: int = 100) -> list[QueuedEvent]:
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM webhook_events WHERE lane = ? AND position > ? "
            "ORDER BY position LIMIT ?"
        )
        return [
            QueuedEvent(str(p), str(c), bytes(e), int(m), int(d), str(k or ""))
            for p, c, e, m, d, k in await self._fetch(sql, (lane, int(after or 0), limit))
        ]

    async def done(self, lane: str, positions: Sequence[str]) -> None:
        if not positions:
            return
        self._fired.difference_update(int(p) for p in positions)
        async with self._transaction() as db:
            await db.executemany(
                "DELETE FROM webhook_events WHERE position = ? AND lane = ?",
                [(int(p), lane) for p in positions],
            )

    async def dead_letter(
        self, lane: str, events: Sequence[QueuedEvent], reason: str, failed_ms: int
    ) -> None:
        app_id = lane_app(lane)
        self._fired.difference_update(int(e.position) for e in events)
        async with self._transaction() as db:
            for event in events:
                cursor = await db.execute(
                    "DELETE FROM webhook_events WHERE position = ? AND lane = ?",
                    (int(event.position), lane),
                )
                if cursor.rowcount:
                    await db.execute(
                        "INSERT INTO webhook_dead_letters (app_id, lane, channel, event, "
                        "produced_ms, failed_ms, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            app_id,
                            lane,
                            event.channel,
                            event.event,
                            event.produced_ms,
                            failed_ms,
                            reason,
                        ),
                    )
            await db.execute(
                "DELETE FROM webhook_dead_letters WHERE app_id = ? AND id <= (SELECT id FROM "
                "webhook_dead_letters WHERE app_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (app_id, app_id, self.dead_letter_limit),
            )

    async def record_attempt(self, lane: str, attempt: DeliveryAttempt) -> None:
        self._op(
            "attempt",
            lane,
            attempt.at_ms,
            attempt.status,
            attempt.latency_ms,
            attempt.events,
            attempt.error,
        )
        self._op("trim", lane, lane, LOG_LIMIT)

    async def depth(self, lanes: Sequence[str]) -> dict[str, LaneDepth]:
        found = {lane: LaneDepth(0, 0) for lane in lanes}
        sql = (
            "SELECT lane, COUNT(*), MIN(produced_ms) FROM webhook_events WHERE lane = ? "
            "GROUP BY lane"
        )
        for lane in lanes:
            for name, count, oldest in await self._fetch(sql, (lane,)):
                found[str(name)] = LaneDepth(int(count), int(oldest))
        return found

    # --- what an operator reads -----------------------------------------------------------

    async def dead_letters(
        self, app_id: str, after: str = "", limit: int = 100
    ) -> list[DeadLetter]:
        sql = (
            "SELECT id, lane, channel, event, produced_ms, failed_ms, reason FROM "
            "webhook_dead_letters WHERE app_id = ? AND id > ? ORDER BY id LIMIT ?"
        )
        return [
            DeadLetter(str(i), str(la), str(c), bytes(e), int(p), int(f), str(r))
            for i, la, c, e, p, f, r in await self._fetch(sql, (app_id, int(after or 0), limit))
        ]

    async def replay(self, app_id: str, ids: Sequence[str]) -> int:
        replayed = 0
        async with self._transaction() as db:
            for dead_id in (i for i in ids if i.isascii() and i.isdigit()):
                sql = (
                    "SELECT lane, channel, event FROM webhook_dead_letters "
                    "WHERE id = ? AND app_id = ?"
                )
                async with db.execute(sql, (int(dead_id), app_id)) as rows:
                    row = await rows.fetchone()
                if row is None:
                    continue
                await db.execute(INSERT, (*row, self._now_ms(), 0, None))
                await db.execute("DELETE FROM webhook_dead_letters WHERE id = ?", (int(dead_id),))
                replayed += 1
        return replayed

    async def delivery_log(self, lane: str, limit: int = 100) -> list[DeliveryAttempt]:
        sql = (
            "SELECT at_ms, status, latency_ms, events, error FROM webhook_attempts "
            "WHERE lane = ? ORDER BY id DESC LIMIT ?"
        )
        return [
            DeliveryAttempt(int(at), int(status), int(latency), int(count), str(error))
            for at, status, latency, count, error in await self._fetch(sql, (lane, limit))
        ]


async def _holds_events(db: aiosqlite.Connection, lane: str) -> bool:
    async with db.execute("SELECT 1 FROM webhook_events WHERE lane = ? LIMIT 1", (lane,)) as rows:
        return await rows.fetchone() is not None
