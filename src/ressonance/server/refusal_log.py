"""One INFO line per refusal, with the app and the reason; a flood of them costs a few lines.

What a node refuses (a new WebSocket, an HTTP API request, a subscription, a sign-in, a client
event, a message) is what an operator asks about first ("why does my key not work?"), so
each refusal is logged at INFO as one key=value line, without turning debug logs on:

    event=refused kind=connection code=4001 app_id=- key='wrong-key' address=10.0.0.7
        reason='App key does not exist'

Rules:
1. At most `LINES_PER_WINDOW` lines per kind and code every `WINDOW_SECONDS`; the rest are
   counted, and the count is one line when the window is over
   (`event=refusals_suppressed kind=... code=... suppressed=K window_s=10`), written by the
   next refusal of that kind and code or by `flush` (once a tick), whichever comes first.
   Kinds are a few fixed words and codes the protocol's, so the windows kept are few.
2. Values a client chose (a key, a channel, a reason quoting them) are written with repr()
   and cut to `MAX_VALUE` characters: a line stays one line, whatever was sent.
3. Never a secret: callers pass the reason the client was sent, which never holds one, and
   no signature, token or secret is a field.
4. Nothing is formatted when INFO is off for this logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

LINES_PER_WINDOW: Final = 10
WINDOW_SECONDS: Final = 10.0
MAX_VALUE: Final = 200

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Window:
    start: float
    lines: int = 0
    suppressed: int = 0


def quoted(value: str) -> str:
    """A client's value for a log line: repr, cut to MAX_VALUE characters (rule 2)."""
    return repr(value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + "...")


def app_label(app_id: str | None) -> str | None:
    """An app id a client gave (in a path): as it is when it is one (digits), else quoted."""
    if app_id is None or app_id.isdigit():
        return app_id
    return quoted(app_id)


class RefusalLog:
    """The refusals of one node, logged with a bound per kind and code (rule 1)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        logger: logging.Logger = _log,
        lines: int = LINES_PER_WINDOW,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.clock = clock
        self.logger = logger
        self.lines = lines
        self.window = window
        self._windows: dict[tuple[str, int | None], _Window] = {}

    def refused(
        self, kind: str, code: int | None, app_id: str | None, reason: str, **fields: str | None
    ) -> None:
        """Log one refusal: `fields` are written as given (quote a client's with `quoted`)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        now = self.clock()
        key = (kind, code)
        window = self._windows.get(key)
        if window is None or now - window.start >= self.window:
            if window is not None:
                self._report(key, window)
            window = self._windows[key] = _Window(now)
        if window.lines >= self.lines:
            window.suppressed += 1
            return
        window.lines += 1
        extra = "".join(f" {name}={value}" for name, value in fields.items() if value is not None)
        self.logger.info(
            "event=refused kind=%s code=%s app_id=%s%s reason=%s",
            kind,
            code,
            app_id or "-",
            extra,
            quoted(reason),
        )

    def flush(self) -> None:
        """Report the windows that are over (once a tick)."""
        now = self.clock()
        for key, window in list(self._windows.items()):
            if now - window.start >= self.window:
                self._report(key, window)
                del self._windows[key]

    def _report(self, key: tuple[str, int | None], window: _Window) -> None:
        if window.suppressed:
            self.logger.info(
                "event=refusals_suppressed kind=%s code=%s suppressed=%d window_s=%g",
                *key,
                window.suppressed,
                self.window,
            )
