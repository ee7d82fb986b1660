"""Resume after reconnect: the events a client missed, then the live stream, with no seam.

A subscribe to a channel that keeps history runs in three steps around the subscription
itself (`server.subscriptions`), through the `Resumption` that `Recovery.begin` makes:
1. Before the session is indexed on the channel's topic, a `LiveHold` is made to stand in
   for it in the hub (`stand_in`): from the moment of indexing, the channel's live frames
   that reach this node are held, in order, instead of written.
2. `start`, after the subscription is recorded: the channel's history after the client's
   serial is read; its newest serial goes into `subscription_succeeded` (`protocol.history`).
3. `finish`, right after `subscription_succeeded`: the missed events are written, page by
   page (each page in writes of at most `CHUNK_BYTES`, the next once the client has taken
   most of the last: a slow reader is paced, not overrun); then the held frames, minus the
   events already replayed (serial at most the last one written). Nothing is awaited after
   the last read, so no frame slips in between. The hold then passes the live frames on,
   still minus the replayed ones, for `SETTLE_SECONDS`, and the session takes its place in
   the index (from then on a delivery to it is a plain write again).

Why nothing is lost or doubled: the hold is indexed (and the backbone subscribed) before the
first read, and an event gets its serial in the store before it is handed to the backbone.
So an event kept after a read arrives into the hold, and one kept before it is in what the
reads return; its live copy, if it comes at all, is dropped by serial, whether it arrives
before the replay ends or after (the publishing node may hand it to the backbone a moment
after the read saw it kept). The guarantee thus holds for publishes that reach this node
within `SETTLE_SECONDS` of being kept, which on a working backbone is milliseconds.

When the gap cannot be filled (the events after the serial are no longer kept, the serial
is not of this log, the channel keeps no history, or a read fails half-way), the client
gets `ressonance:resume_failed` after whatever could be written, and the live stream: it is
never left behind without being told. A hold over `max_buffer_messages` frames closes the
connection with 4100 (the client reconnects and resumes again).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from ressonance.backbone.base import Topic
from ressonance.protocol import messages as m
from ressonance.protocol.channels import Channel
from ressonance.protocol.errors import ErrorCode, RessonanceError
from ressonance.protocol.frames import text_frame
from ressonance.protocol.history import (
    NO_HISTORY,
    TOO_OLD,
    UNAVAILABLE,
    keeps_history,
    resume_failed,
    serial_of,
)
from ressonance.server.fanout import Fanout
from ressonance.server.history import ChannelHistory
from ressonance.server.session import SLOW_REASON, Session
from ressonance.state.base import HistoryEvent, HistoryPage

log = logging.getLogger(__name__)

PAGE_EVENTS: Final = 500  # events read from the store at a time
CHUNK_BYTES: Final = 64 * 1024  # replayed bytes written at a time
DRAIN_POLL_SECONDS: Final = 0.005
DRAIN_WAIT_SECONDS: Final = 10.0  # then the session's own output limits decide
SETTLE_SECONDS: Final = 5.0  # replayed events' live copies are dropped this long after


class LiveHold:
    """Stands in for a session in the hub: holds the topic's frames while the missed events
    are written (an O(1) append), then passes them on minus the replayed ones."""

    __slots__ = ("frames", "limit", "replayed", "session", "socket_id")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.socket_id = session.socket_id
        self.limit = session.max_buffer_messages
        self.frames: list[bytes] = []
        self.replayed: int | None = None  # once passing on: the last serial replayed

    def write(self, frame: bytes) -> None:
        replayed = self.replayed
        if replayed is not None:
            serial = serial_of(frame)
            if serial is None or serial > replayed:
                self.session.write(frame)
            return
        frames = self.frames
        frames.append(frame)
        if len(frames) > self.limit and not self.session.closed:
            self.session.counters.slow_disconnects += 1
            self.session.close(ErrorCode.OVER_CAPACITY, SLOW_REASON)

    def close(self, code: int, reason: str) -> None:
        self.session.close(code, reason)


class _GapError(RessonanceError):
    """The events after the client's serial cannot all be written (`reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Resumption:
    """One subscribe's part in history and resume (see the module docstring)."""

    def __init__(
        self,
        recovery: Recovery,
        session: Session,
        channel: Channel,
        resume_after: int | None,
    ) -> None:
        self.recovery = recovery
        self.session = session
        self.channel = channel
        self.app = session.connection.app
        self.after = resume_after
        self.keeps_history = keeps_history(self.app, channel.name)
        resuming = self.keeps_history and resume_after is not None
        self.stand_in: LiveHold | None = LiveHold(session) if resuming else None
        self._page: HistoryPage | None = None
        self._last: int | None = None
        self._written = 0 if resume_after is None else resume_after  # replayed up to
        self._gap: str | None = None if self.keeps_history else NO_HISTORY

    async def start(self) -> int | None:
        """Read where the channel stands: its newest serial, None if it keeps no history."""
        history = self.recovery.history
        if not self.keeps_history:
            return None
        if self.after is None:
            return await history.position(self.app, self.channel.name)
        page = await history.read(self.app, self.channel.name, after=self.after, limit=PAGE_EVENTS)
        self._last = page.last
        if page.last is None:  # the log is gone: start a new one, tell the client
            self._last = await history.position(self.app, self.channel.name)
            self._gap = TOO_OLD
        elif self.after > page.last or (
            self.after < page.last and (not page.events or page.events[0].serial != self.after + 1)
        ):
            self._gap = TOO_OLD
        self._page = page
        return self._last

    async def finish(self) -> None:
        """Write what was missed and what was held, then hand the topic to the session."""
        if self.after is None:
            return
        gap = self._gap
        if gap is None and self._page is not None:
            try:
                await self._replay(self._page)
            except _GapError as exc:
                gap = exc.reason
            except Exception as exc:  # the store failed half-way: the client must know
                log.warning("event=replay_failed channel=%s error=%r", self.channel.name, exc)
                gap = UNAVAILABLE
        self._count(gap)
        if gap is not None and not self.session.closed:
            self.session.send(resume_failed(self.channel.name, gap, self.after, self._last))
        self._release(self._written)

    async def _replay(self, page: HistoryPage) -> None:
        """Write the events after the client's serial, page by page (`_written` follows)."""
        last = page.last
        assert last is not None
        while page.events and not self.session.closed:
            if page.events[0].serial != self._written + 1:  # trimmed while we were writing
                raise _GapError(TOO_OLD)
            await self._write(page.events)
            self._written = page.events[-1].serial
            if self._written >= last:
                return
            page = await self.recovery.history.read(
                self.app, self.channel.name, after=self._written, limit=PAGE_EVENTS
            )

    async def _write(self, events: list[HistoryEvent]) -> None:
        name = self.channel.name
        chunk: list[bytes] = []
        size = 0
        for event in events:
            frame = text_frame(
                m.encode_channel_event(name, event.name, event.data, None, event.serial)
            )
            chunk.append(frame)
            size += len(frame)
            if size >= CHUNK_BYTES:
                await self._send(chunk)
                chunk, size = [], 0
        if chunk:
            await self._send(chunk)

    async def _send(self, frames: list[bytes]) -> None:
        """Write `frames` once the client has taken most of what it was sent before."""
        session = self.session
        waited = 0.0
        while (
            session.outlet.buffered() > CHUNK_BYTES
            and not session.closed
            and waited < DRAIN_WAIT_SECONDS
        ):
            await asyncio.sleep(DRAIN_POLL_SECONDS)
            waited += DRAIN_POLL_SECONDS
        session.send_frames(b"".join(frames), len(frames))

    def _release(self, written: int) -> None:
        """The held frames not yet written; later ones pass, then the session takes over."""
        hold, session = self.stand_in, self.session
        if hold is None or session.closed:
            return
        kept = [f for f in hold.frames if (serial := serial_of(f)) is None or serial > written]
        hold.frames = []
        hold.replayed = written
        if kept:
            session.send_frames(b"".join(kept), len(kept))
        topic = Topic(self.app.id, self.channel.name)
        asyncio.get_running_loop().call_later(
            SETTLE_SECONDS, self.recovery.fanout.take_over, session, topic, hold
        )

    def _count(self, gap: str | None) -> None:
        counters = self.recovery.fanout.metrics.app(self.app.id)
        if gap is None:
            counters.resumes_recovered += 1
        else:
            counters.resumes_gap += 1


class Recovery:
    """Makes the `Resumption` of each subscribe, over the channel history and the fanout."""

    def __init__(self, *, history: ChannelHistory, fanout: Fanout) -> None:
        self.history = history
        self.fanout = fanout

    def begin(self, session: Session, channel: Channel, resume_after: int | None) -> Resumption:
        return Resumption(self, session, channel, resume_after)
