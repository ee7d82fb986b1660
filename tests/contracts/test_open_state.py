"""`open_state(url)`: the stores of `--state`, picked by URL scheme and made together."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ressonance.state import SCHEMES, open_state
from ressonance.state.memory import MemoryMembership, MemoryPresenceStore
from tests import services
from tests.contracts.conftest import unique_prefix
from tests.fakes import FakeClock


@pytest.mark.parametrize("url", [None, "", "memory://"])
async def test_no_url_or_memory_keeps_the_state_in_this_process(
    url: str | None, clock: FakeClock
) -> None:
    state = open_state(url, node_id="a", clock=clock)

    assert isinstance(state.presence, MemoryPresenceStore)
    assert isinstance(state.membership, MemoryMembership)
    await state.close()


def test_an_unknown_scheme_is_refused_with_the_known_ones(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="'postgresql' is not one of memory://, redis://"):
        open_state("postgresql://db", node_id="a", clock=clock)
    assert SCHEMES == ("memory://", "redis://", "rediss://", "unix://")


async def test_a_unix_socket_url_shares_the_state(tmp_path: Path, clock: FakeClock) -> None:
    tcp = services.valkey(tmp_path)
    socket = tmp_path / "valkey.sock"
    server = dataclasses.replace(
        tcp, argv=lambda port, directory: [*tcp.argv(port, directory), "--unixsocket", str(socket)]
    )
    prefix = unique_prefix()
    with services.running(server):
        a, b = (open_state(f"unix://{socket}", node_id=n, clock=clock, prefix=prefix) for n in "ab")
        try:
            await a.presence.join_presence("1", "presence-room", "1.1", "alice", None)
            assert await b.presence.members("1", "presence-room") == {"alice": None}
        finally:
            await a.close()
            await b.close()
