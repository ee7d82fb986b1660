"""A loopback TCP proxy a test can cut, for the Python clients (the Node scenarios have
tests/e2e/js/lib/proxy.mjs): `cut()` drops every connection through it and refuses new ones
until `restore()`, which may move it to the next upstream port (another node)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CuttableProxy:
    """Forwards loopback connections to `ports[index]` (the upstream in use)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.index = 0
        self.cut_off = False
        self.live: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.serving: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.ports[self.index])
        self.live |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self.live.discard(writer)

    def cut(self) -> None:
        self.cut_off = True
        for writer in list(self.live):
            writer.transport.abort()
        self.live.clear()

    def restore(self, *, next_upstream: bool = False) -> None:
        if next_upstream:
            self.index = (self.index + 1) % len(self.ports)
        self.cut_off = False

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await asyncio.gather(*self.serving, return_exceptions=True)


@contextlib.asynccontextmanager
async def proxied(ports: list[int]) -> AsyncIterator[tuple[CuttableProxy, int]]:
    proxy = CuttableProxy(ports)
    port = await proxy.start()
    try:
        yield proxy, port
    finally:
        await proxy.close()
