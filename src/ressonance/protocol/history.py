"""Channel history in the Pusher protocol: which channels keep it, and how serials travel.

The protocol extension (docs/topics/delivery.md), built so that unmodified clients never see
a difference (pusher-js, laravel-echo and the Pusher SDKs read only `event`, `channel`,
`data` and `user_id` of a message):
- An event published to a channel that keeps history carries its serial in a top-level
  `serial` field, written last: `{"event":..,"channel":..,"data":"..","serial":42}`.
- `pusher_internal:subscription_succeeded` on such a channel carries the channel's newest
  serial the same way, so a client knows where it stands before any event arrives.
- A client that reconnects adds `"resume_after": <the last serial it saw>` to the `data` of
  its `pusher:subscribe`; right after `subscription_succeeded` it gets every event it
  missed, in order, then the live stream. If the gap cannot be filled, it gets the channel
  event `ressonance:resume_failed` (data: reason, the serial it asked after, the channel's
  newest serial) instead, and the live stream.

Rules: pure functions, no I/O; a pattern is channel-name characters and `*` (any run of
them), checked where settings are read (`apps.plans`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Final

import orjson

from ressonance.protocol import messages as m
from ressonance.protocol.app import App

RESUME_FAILED: Final = "ressonance:resume_failed"
# Why a resume could not be served (the `reason` of ressonance:resume_failed).
TOO_OLD: Final = "too_old"  # the events after the serial are no longer kept (or never were)
NO_HISTORY: Final = "no_history"  # the channel keeps no history
UNAVAILABLE: Final = "unavailable"  # the history could not be read; the client may reconnect

_SERIAL_FIELD: Final = b',"serial":'


def keeps_history(app: App, channel: str) -> bool:
    """Whether the app's `history_channels` patterns name `channel`."""
    for pattern in app.history_channels:
        if pattern[-1] == "*" and "*" not in pattern[:-1]:
            if channel.startswith(pattern[:-1]):  # the usual `prefix-*`, without fnmatch
                return True
        elif fnmatchcase(channel, pattern):
            return True
    return False


def serial_of(frame: bytes) -> int | None:
    """The serial of an event in a server's text `frame` (`protocol.frames.text_frame`), or
    None when it carries none. Only the end of the frame is read: the serial is the last
    field, and `,"` cannot occur inside a JSON string, where every quote is escaped."""
    if not frame.endswith(b"}"):
        return None
    at = frame.rfind(_SERIAL_FIELD)
    digits = frame[at + len(_SERIAL_FIELD) : -1]
    if at < 0 or not digits.isdigit():
        return None
    return int(digits)


def resume_failed(channel: str, reason: str, after: int, serial: int | None) -> bytes:
    """The channel event that tells a client its gap was not filled, and where it stands."""
    data = {"reason": reason, "resume_after": after, "serial": serial}
    return m.encode(RESUME_FAILED, orjson.dumps(data).decode(), channel)
