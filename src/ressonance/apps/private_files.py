"""Files that hold secrets: created 0600 in a 0700 directory, tightened when found looser.

An app store holds every app's secret, so no other local user may read it (docs/topics/
security.md, "Secrets at rest"). Rules:
- A file is created with mode 0600 before anything writes to it (never created readable and
  tightened afterwards), and a directory we create is 0700; the process umask can only take
  bits away from these.
- A file or directory found with group or other bits is chmod-ed to 0600 / 0700 and a warning
  names it and its old mode, once per start; one we cannot change (another owner) is warned
  about and left as it is, since refusing to start would turn a warning into an outage.
- A SQLite database's `-wal` and `-shm` files carry the same secrets: SQLite creates them with
  the database file's mode, and existing ones are tightened with it.
- A directory the operator named (the parent of `--apps sqlite:///path`) is not changed, as it
  may be a shared one such as the working directory: it is warned about when other users may
  write to it (they could replace the store).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

FILE_MODE: Final = 0o600
DIRECTORY_MODE: Final = 0o700
_OTHERS: Final = 0o077  # the group and other bits
SQLITE_COMPANIONS: Final = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """Create `path` (and missing parents) so that only its owner may enter it; an existing
    one with group or other bits is tightened to 0700 with a warning. OSError when it cannot
    be created."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            if not path.is_dir():  # else made by another process meanwhile: checked below
                raise
    _tighten(path, DIRECTORY_MODE)


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite database `path` as an empty 0600 file when it is missing (SQLite
    takes an empty file as a new database), and tighten it and its companions otherwise."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.close(descriptor)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE)
    _warn_if_others_may_write(path.parent)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if not current & _OTHERS:
        return
    try:
        path.chmod(mode)
    except OSError as exc:
        log.warning(
            "event=secret_file_mode_loose path=%s mode=%o wanted=%o error=%r",
            path,
            current,
            mode,
            exc.strerror,
        )
        return
    log.warning(
        "event=secret_file_mode_tightened path=%s was=%o now=%o "
        "reason='it holds app secrets; other local users could read them'",
        path,
        current,
        mode,
    )


def _warn_if_others_may_write(directory: Path) -> None:
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning(
            "event=secret_file_directory_writable path=%s mode=%o "
            "reason='other users may replace the app store; keep it in a 0700 directory'",
            directory,
            mode,
        )
