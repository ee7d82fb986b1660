"""A real Ressonance server on a free loopback port, started as a user would start it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ressonance.client import PusherSocket

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    app_id: str
    key: str
    secret: str
    process: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
    client_ssl: ssl.SSLContext | None = None,
    env_app: bool = True,
    preexec_fn: Callable[[], None] | None = None,
    launcher: list[str] | None = None,
    cwd: Path = REPO,
) -> RunningServer:
    """Start `python -m ressonance serve` and wait until /readyz answers 200.

    With `client_ssl` (a context trusting the server's certificate; pass --tls-cert and
    --tls-key in `args`) the server is polled, and addressed, over https://. Without
    `env_app`, the server gets no RESSONANCE_APP_* app (pass `--apps URL` in `args`); the
    credentials in the RunningServer are then those the test puts in `extra_env`
    (E2E_APP_ID, E2E_KEY, E2E_SECRET), or empty. `preexec_fn` runs in the child before the
    server starts (to set resource limits, for example). `launcher` replaces `python -m
    ressonance` (an installed `ressonance` script, run in `cwd` without this checkout's
    PYTHONPATH).
    """
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RESSONANCE_APP")}
    if launcher is not None:
        inherited.pop("PYTHONPATH", None)
    app_env = {
        "RESSONANCE_APP_ID": "424242",
        "RESSONANCE_APP_KEY": "e2e-key",
        "RESSONANCE_APP_SECRET": "e2e-secret",
        "RESSONANCE_APP_ENABLE_CLIENT_MESSAGES": "true",
        "RESSONANCE_APP_WATCHLIST": "true",
        "RESSONANCE_APP_SUBSCRIPTION_COUNT": "true",
        # Every channel keeps history: unmodified clients must not notice (issue 12).
        "RESSONANCE_APP_HISTORY_CHANNELS": "*",
    }
    env = {**inherited, **(app_env if env_app else {}), **(extra_env or {})}
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                *(launcher or [sys.executable, "-m", "ressonance"]),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            + (args or []),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            preexec_fn=preexec_fn,
        )
    server = RunningServer(
        "127.0.0.1",
        port,
        env.get("RESSONANCE_APP_ID", env.get("E2E_APP_ID", "")),
        env.get("RESSONANCE_APP_KEY", env.get("E2E_KEY", "")),
        env.get("RESSONANCE_APP_SECRET", env.get("E2E_SECRET", "")),
        process,
        log_path,
        "https" if client_ssl is not None else "http",
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            url = f"{server.http_url}/readyz"
            with urllib.request.urlopen(url, timeout=1, context=client_ssl) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def ressonance_js() -> Path:
    """clients/js (the `ressonance-js` add-on), installed from its lock file, built and its
    types checked against pusher-js and laravel-echo (`npm test`) once per session, with npm
    as a contributor does it; the directory of its dist/."""
    directory = REPO / "clients" / "js"
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm (Node.js >= 20) is required to build clients/js", pytrace=False)
    steps = [[npm, "run", "build", "--silent"], [npm, "test", "--silent"]]
    if not (directory / "node_modules" / "pusher-js").is_dir():
        steps.insert(0, [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    for step in steps:
        done = subprocess.run(step, cwd=directory, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(step[1:])} in clients/js failed:\n{done.stdout}{done.stderr}")
    return directory / "dist"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """One running node with a single app (client events, watchlist, subscription counts on)."""
    running = start_server(tmp_path)
    yield running
    stop_server(running)


@pytest.fixture
async def sockets() -> AsyncIterator[list[PusherSocket]]:
    """SDK sockets a test opened (through `connected`), closed after it."""
    opened: list[PusherSocket] = []
    yield opened
    for sock in opened:
        await sock.close()


async def connected(sockets: list[PusherSocket], sock: PusherSocket) -> PusherSocket:
    """`sock`, connected and kept in `sockets` to be closed after the test."""
    await sock.connect()
    sockets.append(sock)
    return sock
