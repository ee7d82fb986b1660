"""Plumbing of the benchmark: target servers, load-generator processes, /proc sampling.

Nothing here knows about scenarios. Every process started here is tracked by PID and
stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
BUILD_DIR = BENCH_DIR / "build"
LOADGEN_SRC = BENCH_DIR / "loadgen.c"
LOADGEN_BIN = BUILD_DIR / "loadgen"
SOKETI_DIR = BENCH_DIR / "soketi"
SOKETI_BIN = SOKETI_DIR / "node_modules" / "@soketi" / "soketi" / "bin" / "server.js"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = 0
# The load generator gets every other CPU (CPU 1 on the 2-core machine of docs/benchmarks.md).
LOAD_CPUS = frozenset(os.sched_getaffinity(0) - {SERVER_CPU})

Json = dict[str, Any]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinning_possible() -> bool:
    return SERVER_CPU in os.sched_getaffinity(0) and bool(LOAD_CPUS)


def child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """A preexec_fn: pin the child (and every thread it will start) to `cpus`, raise fds."""

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return setup


# --- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_busy_seconds() -> float:
    """CPU-seconds every CPU of the machine spent busy since boot (all processes)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class Snapshot:
    """CPU counters at one instant: the server, the load generator, the whole machine."""

    wall: float
    server_cpu: float
    client_cpu: float
    machine_cpu: float

    @classmethod
    def take(cls, server_pid: int | None, client_pids: Sequence[int]) -> Snapshot:
        return cls(
            wall=time.monotonic(),
            server_cpu=cpu_seconds(server_pid) if server_pid else 0.0,
            client_cpu=sum(cpu_seconds(pid) for pid in client_pids),
            machine_cpu=machine_busy_seconds(),
        )


def cpu_between(a: Snapshot, b: Snapshot, active_s: float | None = None) -> Json:
    """Server, load-generator and foreign CPU used between two snapshots.

    Percentages are of one core over `active_s` (the measured window) when given, else over
    the wall time between the snapshots. "other" is every other process of the machine:
    the noise of a shared machine.
    """
    wall = b.wall - a.wall
    span = active_s if active_s and active_s > 0 else wall
    server = b.server_cpu - a.server_cpu
    client = b.client_cpu - a.client_cpu
    other = max(0.0, (b.machine_cpu - a.machine_cpu) - server - client)
    return {
        "server_cpu_s": round(server, 3),
        "client_cpu_s": round(client, 3),
        "other_cpu_s": round(other, 3),
        "server_cpu_pct": round(100 * server / span, 1) if span > 0 else None,
        "client_cpu_pct": round(100 * client / span, 1) if span > 0 else None,
        "other_cpu_pct": round(100 * other / wall, 1) if wall > 0 else None,
    }


class RssSampler:
    """Samples a server's VmRSS every `interval` seconds to keep the peak."""

    def __init__(self, pid: int | None, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_bytes(pid) if pid else 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while self.pid:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.pid:
            self.peak = max(self.peak, rss_bytes(self.pid))


# --- the load generator --------------------------------------------------------------------


def build_loadgen() -> Path:
    """Compile bench/loadgen.c when the binary is missing or older than the source."""
    if LOADGEN_BIN.exists() and LOADGEN_BIN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return LOADGEN_BIN
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("bench: a C compiler (gcc) is needed to build bench/loadgen.c")
    BUILD_DIR.mkdir(exist_ok=True)
    command = [compiler, "-O2", "-Wall", "-o", str(LOADGEN_BIN), str(LOADGEN_SRC), "-lm"]
    log("bench: " + " ".join(command))
    subprocess.run(command, check=True)
    return LOADGEN_BIN


def check_loadgen_digests() -> None:
    """The C MD5/HMAC-SHA256 must agree with hashlib, or every signed request fails."""
    import hashlib
    import hmac

    out = subprocess.run(
        [str(LOADGEN_BIN), "selftest"], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    inputs = ["", "abc", "The quick brown fox jumps over the lazy dog", "0123456789" * 7]
    for text, line in zip(inputs, out, strict=False):
        expected = (
            hashlib.md5(text.encode()).hexdigest()
            + " "
            + hmac.new(b"7ad3773142a6692b25b8", text.encode(), hashlib.sha256).hexdigest()
        )
        if line != expected:
            raise SystemExit(f"bench: loadgen digests disagree with hashlib for {text!r}")


class Loadgen:
    """One loadgen process: JSON lines on stdout, commands on stdin."""

    def __init__(self, name: str, args: list[str], cpus: frozenset[int] | None) -> None:
        self.name = name
        self.args = args
        self.cpus = cpus
        self.proc: asyncio.subprocess.Process | None = None
        self.progress: Json = {}
        self.ready: asyncio.Future[Json] | None = None
        self.result: asyncio.Future[Json] | None = None
        self.churn_done = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.result = loop.create_future()
        self.proc = await asyncio.create_subprocess_exec(
            str(LOADGEN_BIN),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=child_setup(self.cpus),
            limit=1 << 24,
        )
        self._reader = loop.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                log(f"bench: {self.name}: {raw[:200]!r}")
                continue
            self._dispatch(message)
        for future in (self.ready, self.result):
            if future is not None and not future.done():
                future.set_exception(RuntimeError(f"{self.name} exited without a report"))

    def _dispatch(self, message: Json) -> None:
        kind = message.get("ev")
        if kind == "p":
            self.progress = message
        elif kind == "ready" and self.ready is not None and not self.ready.done():
            self.ready.set_result(message)
        elif kind == "result" and self.result is not None and not self.result.done():
            self.result.set_result(message)
        elif kind == "churn_done":
            self.churn_done.set()

    async def send(self, command: str) -> None:
        if self.proc is None or self.proc.stdin is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.write(command.encode() + b"\n")
            await self.proc.stdin.drain()

    async def finish(self, wait_s: float = 10.0) -> Json:
        """Ask for the report, wait for it and for the process to exit (killing it if late)."""
        await self.send("stop")
        assert self.result is not None
        try:
            report = await asyncio.wait_for(asyncio.shield(self.result), wait_s)
        except (TimeoutError, RuntimeError) as exc:
            report = {"error": f"{self.name}: {exc or 'no report in time'}"}
        await self.kill()
        return report

    async def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await asyncio.wait_for(self._reader, 2)


# --- histograms ----------------------------------------------------------------------------


def merge_hists(parts: Sequence[Sequence[Sequence[int]]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for part in parts:
        for lower, count in part:
            merged[lower] = merged.get(lower, 0) + count
    return merged


def _bucket_width(lower: int) -> int:
    return 1 if lower < 128 else 1 << (lower.bit_length() - 7)


def percentile_ms(hist: dict[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a loadgen microsecond histogram, in milliseconds."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for lower in sorted(hist):
        seen += hist[lower]
        if seen >= rank:
            return round((lower + _bucket_width(lower) / 2) / 1000, 3)
    return None


def latency_metrics(hist: dict[int, int], prefix: str = "latency") -> Json:
    return {
        f"{prefix} p50 ms": percentile_ms(hist, 0.50),
        f"{prefix} p99 ms": percentile_ms(hist, 0.99),
        f"{prefix} p99.9 ms": percentile_ms(hist, 0.999),
    }


# --- progress ------------------------------------------------------------------------------


class Progress:
    """A one-line text progress bar on stderr (one line per 10 % when not a terminal)."""

    WIDTH: ClassVar[int] = 28

    def __init__(self, label: str, total: float, unit: str) -> None:
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._last_decile = -1
        self._last_draw = 0.0

    def update(self, done: float, note: str = "") -> None:
        now = time.monotonic()
        fraction = min(1.0, done / self.total)
        if self.tty:
            if now - self._last_draw < 0.1 and fraction < 1:
                return
            self._last_draw = now
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            line = (
                f"\r  {self.label:<34} [{bar}] {100 * fraction:5.1f}% "
                f"{done:,.0f}/{self.total:,.0f} {self.unit} {now - self.start:5.1f}s {note}"
            )
            sys.stderr.write(line[:160].ljust(120))
            sys.stderr.flush()
            return
        decile = int(fraction * 10)
        if decile > self._last_decile:
            self._last_decile = decile
            log(f"  {self.label}: {100 * fraction:.0f}% ({done:,.0f} {self.unit}) {note}")

    def close(self, summary: str = "") -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 150 + "\r")
        log(f"  {self.label}: done in {time.monotonic() - self.start:.1f}s {summary}")


# --- target servers ------------------------------------------------------------------------


@dataclass
class Credentials:
    app_id: str = "424242"
    key: str = "bench-key"
    secret: str = "bench-secret-0123456789abcdef"


@dataclass
class Server:
    """A Pusher-compatible server on a loopback address, started (or not) by us."""

    name: str
    host: str
    port: int
    creds: Credentials
    pin: bool = False
    pid: int | None = None
    info: Json = field(default_factory=dict)

    async def start(self) -> None:
        """Nothing to start for an external server."""

    async def stop(self) -> None:
        """Nothing to stop for an external server."""

    def ready_path(self) -> str:
        return "/"

    async def wait_ready(self, wait_s: float = 30.0) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if await http_status(self.host, self.port, self.ready_path()) == 200:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready on {self.host}:{self.port} after {wait_s}s")


async def http_status(host: str, port: int, path: str) -> int | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 2)
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class ManagedServer(Server):
    """A server process we start pinned to the server CPU and stop by PID."""

    proc: asyncio.subprocess.Process | None = None
    log_file: Path | None = None
    config_file: Path | None = None

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    async def start(self) -> None:
        argv, env, cwd = self.command()
        handle, name = tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")
        self.log_file = Path(name)
        cpus = frozenset({SERVER_CPU}) if self.pin else None
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=child_setup(cpus),
            start_new_session=True,
        )
        os.close(handle)
        self.pid = self.proc.pid
        try:
            await self.wait_ready()
            self.after_ready()
        except RuntimeError:
            await self.stop()
            raise

    def after_ready(self) -> None:
        """Checks made once the server answers."""

    def log_tail(self, lines: int = 15) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after 8 s."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 8)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.proc = None
        for path in (self.log_file, self.config_file):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()


@functools.cache
def server_settings_of(python: str, source: Path | None) -> frozenset[str]:
    """The [server] settings the Ressonance at `source` (this checkout when None) knows."""
    env = {**os.environ, **({"PYTHONPATH": str(source)} if source is not None else {})}
    probe = (
        "import dataclasses, ressonance.config as c; "
        "print(*(f.name for f in dataclasses.fields(c.Settings)))"
    )
    names = subprocess.run(
        [python, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    return frozenset(names)


@dataclass
class RessonanceServer(ManagedServer):
    source: Path | None = None  # another checkout's src/ (the --baseline revision)
    redis_url: str | None = None  # backbone and state (--redis); memory:// when None
    app_env: dict[str, str] = field(default_factory=dict)  # more RESSONANCE_APP_* (--app-setting)

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        python = REPO_DIR / ".venv" / "bin" / "python"
        # The load generator is one trusted client doing on purpose what the abuse limits stop
        # (thousands of connections a second from 8 addresses, presence churn as fast as
        # acknowledged), and Soketi has no such limits: lift them, so capacity is measured.
        env = {
            "RESSONANCE_APP_ID": self.creds.app_id,
            "RESSONANCE_APP_KEY": self.creds.key,
            "RESSONANCE_APP_SECRET": self.creds.secret,
            "RESSONANCE_APP_MAX_SUBSCRIPTIONS_PER_SEC": "1000000",
            "RESSONANCE_APP_MAX_INBOUND_MESSAGES_PER_SEC": "1000000",
            **self.app_env,
        }
        server: dict[str, object] = {
            "max_connections_per_ip_per_sec": -1,
            "max_pending_connections_per_ip": -1,
        }
        if self.redis_url is not None:  # a prefix of its own: nothing left by an earlier run
            server.update(backbone=self.redis_url, key_prefix=f"bench{self.port}")
        interpreter = str(python if python.exists() else sys.executable)
        known = server_settings_of(interpreter, self.source or REPO_DIR / "src")
        lines = [f"{key} = {json.dumps(value)}" for key, value in server.items() if key in known]
        config = Path(tempfile.gettempdir()) / f"bench-ressonance-{self.port}.toml"
        config.write_text("[server]\n" + "\n".join(lines) + "\n")
        self.config_file = config
        argv = [interpreter, "-m", "ressonance", "serve"]
        argv += ["--host", self.host, "--port", str(self.port), "--log-level", "warning"]
        argv += ["--config", str(config)]
        # First on the path, so the venv's editable install (which may point at another
        # checkout) is shadowed: this checkout's src/, or the baseline's.
        env["PYTHONPATH"] = str(self.source if self.source is not None else REPO_DIR / "src")
        return argv, env, REPO_DIR

    def ready_path(self) -> str:
        return "/readyz"


class SoketiServer(ManagedServer):
    """Soketi 1.6.1 from bench/soketi: HTTP/WS, metrics and UDP discovery on 127.0.0.1."""

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        # The discovery socket's bind address (cluster.address) has no SOKETI_ variable:
        # it is set through a config file. Everything else goes through the environment.
        config = Path(tempfile.gettempdir()) / f"bench-soketi-{self.port}.json"
        config.write_text(json.dumps({"cluster.address": "127.0.0.1"}))
        self.config_file = config
        env = {
            "SOKETI_DEFAULT_APP_ID": self.creds.app_id,
            "SOKETI_DEFAULT_APP_KEY": self.creds.key,
            "SOKETI_DEFAULT_APP_SECRET": self.creds.secret,
            "SOKETI_HOST": self.host,
            "SOKETI_PORT": str(self.port),
            "SOKETI_METRICS_HOST": "127.0.0.1",
            "SOKETI_METRICS_SERVER_PORT": str(self.port + 1),
            "SOKETI_CLUSTER_HOST": "127.0.0.1",
            "SOKETI_CLUSTER_PORT": str(self.port + 2),
            "SOKETI_CLUSTER_UNICAST_ADDRESSES": "127.0.0.1",
            "SOKETI_SHUTDOWN_GRACE_PERIOD": "0",
        }
        node = shutil.which("node") or "node"
        return [node, str(SOKETI_BIN), "start", f"--config={config}"], env, SOKETI_DIR

    def ready_path(self) -> str:
        return "/ready"

    def after_ready(self) -> None:
        maps = Path(f"/proc/{self.pid}/maps").read_text()
        native = sorted({line.split()[-1] for line in maps.splitlines() if "uws_" in line})
        fallback = "Falling back" in (self.log_tail(200) or "")
        self.info["uws_native"] = [Path(p).name for p in native]
        if not native or fallback:
            raise RuntimeError(
                "soketi: the uWebSockets.js native addon is not loaded (JS fallback); "
                "check bench/soketi/package.json overrides and `npm ci`"
            )


def ensure_soketi_installed() -> None:
    if SOKETI_BIN.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench: npm is needed to install Soketi into bench/soketi")
    log("bench: installing Soketi 1.6.1 into bench/soketi (npm ci)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SOKETI_DIR, check=True
    )


def free_port(host: str, start: int) -> int:
    """The first port from `start` on where this port and the next two are free."""
    port = start
    while port < 65000:
        if all(_port_free(host, port + k) for k in range(3)):
            return port
        port += 3
    raise RuntimeError("no free port")


def _port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def is_loopback(host: str) -> bool:
    try:
        return socket.inet_aton(host)[0] == 127
    except OSError:
        return False
