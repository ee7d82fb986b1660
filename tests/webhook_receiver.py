"""A real webhook receiver for tests: an aiohttp server on a free loopback port.

It records every request as received (headers and the raw body, which signatures are
checked against) and answers what `answer(request_number, body)` says (200 by default), so
a test can fail some requests, slow them, or send Retry-After. `stop()` then `start()`
brings it back on the same port (a receiver that was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body)["events"])


Answer = Callable[[int, bytes], Awaitable[web.Response] | web.Response]


def _ok(number: int, body: bytes) -> web.Response:
    return web.Response(status=200, text="ok")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    answer: Answer = _ok
    requests: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answered = self.answer(len(self.requests) + 1, body)
        response = await answered if not isinstance(answered, web.Response) else answered
        self.requests.append(Received(dict(request.headers), body, response.status))
        self._arrived.set()
        return response

    def delivered(self) -> list[dict[str, Any]]:
        """Every event of the requests answered 2xx, in arrival order."""
        return [e for r in self.requests if 200 <= r.status < 300 for e in r.events]

    async def until(self, condition: Callable[[], bool], seconds: float = 20.0) -> None:
        """Wait until `condition()` holds (checked as requests arrive); generous bounds only."""
        async with asyncio.timeout(seconds):
            while not condition():
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), 0.1)


class ReceiverThread:
    """A `Receiver` on an event loop of its own thread, for tests that block their own loop
    (Node scripts, subprocesses): it keeps answering while they run."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    @property
    def url(self) -> str:
        return self.receiver.url

    @property
    def requests(self) -> list[Received]:
        return list(self.receiver.requests)

    def set_answer(self, answer: Answer) -> None:
        self.receiver.answer = answer

    def start(self) -> None:
        self._run(self.receiver.start())

    def stop(self) -> None:
        self._run(self.receiver.stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def delivered(self) -> list[dict[str, Any]]:
        return self.receiver.delivered()

    async def until(self, condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
        """Poll `condition()` (generous bounds only); the failure says what was awaited."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what} not within {seconds} s")
            await asyncio.sleep(0.05)
