"""Files holding secrets are 0600 in a 0700 directory (apps/private_files.py), through the two
ways a node gets a SQLite app store: the embedded default in the state directory, and a store
named with `--apps sqlite:///...`. Modes are read with os.stat, which holds as root too."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ressonance.apps import open_registry
from ressonance.apps.base import AppRecord
from ressonance.apps.private_files import private_directory, private_sqlite_file
from ressonance.apps.sourcing import AppSource, open_app_registry


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask a service manager could hand the process: modes come from us."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
async def test_the_embedded_store_is_0600_in_a_0700_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "xdg" / "ressonance"
    registry = await open_app_registry(AppSource(state_dir=state))
    try:
        await registry.create(AppRecord(id="7", key="k7", secret="s7"))  # writes the WAL
        files = sorted(p.name for p in state.iterdir())
        assert files == ["ressonance.db", "ressonance.db-shm", "ressonance.db-wal"]
        assert mode(state) == 0o700
        assert {name: mode(state / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        await registry.close()


@pytest.mark.usefixtures("open_umask")
async def test_a_named_sqlite_store_is_created_0600(tmp_path: Path) -> None:
    registry = await open_registry(f"sqlite:///{tmp_path}/apps.db")
    try:
        await registry.create(AppRecord(id="7", key="k7", secret="s7"))
        assert mode(tmp_path / "apps.db") == 0o600
        assert mode(tmp_path / "apps.db-wal") == 0o600
    finally:
        await registry.close()


async def test_existing_loose_files_are_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "ressonance"
    registry = await open_app_registry(AppSource(state_dir=state))
    await registry.close()
    for name in ("ressonance.db", "ressonance.db-wal", "ressonance.db-shm"):
        (state / name).touch()
        (state / name).chmod(0o644)
    state.chmod(0o755)

    with caplog.at_level(logging.WARNING, logger="ressonance.apps.private_files"):
        registry = await open_app_registry(AppSource(state_dir=state))
    await registry.close()

    assert mode(state) == 0o700
    assert mode(state / "ressonance.db") == 0o600  # (SQLite removed the -wal and -shm at close)
    tightened = [r.getMessage() for r in caplog.records if "tightened" in r.getMessage()]
    assert f"event=secret_file_mode_tightened path={state} was=755 now=700" in tightened[0]
    for name in ("ressonance.db", "ressonance.db-wal", "ressonance.db-shm"):
        assert any(f"path={state / name} was=644 now=600" in t for t in tightened), name


def test_private_files_leave_tight_ones_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "d"
    with caplog.at_level(logging.WARNING):
        private_directory(directory)
        private_directory(directory)
        private_sqlite_file(directory / "apps.db")
        private_sqlite_file(directory / "apps.db")

    assert (mode(directory), mode(directory / "apps.db")) == (0o700, 0o600)
    assert caplog.records == []


def test_a_named_stores_shared_directory_is_warned_about_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    with caplog.at_level(logging.WARNING):
        private_sqlite_file(shared / "apps.db")

    assert mode(shared) == 0o777
    assert mode(shared / "apps.db") == 0o600
    [warning] = caplog.records
    assert warning.getMessage().startswith(
        f"event=secret_file_directory_writable path={shared} mode=777"
    )


def test_a_file_where_the_directory_should_be_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")

    with pytest.raises(FileExistsError):
        private_directory(tmp_path / "state")
    assert mode(tmp_path / "state") != 0o700
