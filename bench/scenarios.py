"""The benchmark scenarios (a)-(f): what each one starts, waits for and measures.

A scenario gets a running server (a fresh one per scenario) and returns a flat dict of
metrics (name -> number) plus raw details. Metric names carry their unit; `BETTER` says
which direction is good, for the report.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from harness import (
    LOAD_CPUS,
    Json,
    Loadgen,
    Progress,
    RssSampler,
    Server,
    Snapshot,
    cpu_between,
    latency_metrics,
    merge_hists,
    raise_nofile,
    rss_bytes,
)

MB = 1024 * 1024

# Direction of each metric: "higher" or "lower" is better; absent = informational.
BETTER: dict[str, str] = {
    "deliveries/s": "higher",
    "publishes/s": "higher",
    "requests/s": "higher",
    "joins/s": "higher",
    "member events/s": "higher",
    "connects/s": "higher",
    "latency p50 ms": "lower",
    "latency p99 ms": "lower",
    "latency p99.9 ms": "lower",
    "request p50 ms": "lower",
    "request p99 ms": "lower",
    "request p99.9 ms": "lower",
    "join p50 ms": "lower",
    "join p99 ms": "lower",
    "join p99.9 ms": "lower",
    "server us CPU/delivery": "lower",
    "server us CPU/request": "lower",
    "server us CPU/join": "lower",
    "server us CPU/connect": "lower",
    "KB RSS/connection": "lower",
    "server peak RSS MB": "lower",
    "lost deliveries": "lower",
    "failed connections": "lower",
}


@dataclass
class Context:
    server: Server
    pin: bool
    conns_per_proc: int

    @property
    def load_cpu(self) -> frozenset[int] | None:
        return LOAD_CPUS if self.pin else None

    def target_args(self) -> list[str]:
        s = self.server
        return ["--host", s.host, "--port", str(s.port), "--app-id", s.creds.app_id]

    def auth_args(self) -> list[str]:
        return ["--key", self.server.creds.key, "--secret", self.server.creds.secret]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Context], Awaitable[Json]]
    timeout: float
    needs_fds: int = 0


# --- building blocks -----------------------------------------------------------------------


async def start_ws_group(
    ctx: Context, conns: int, extra: Sequence[str], limit_s: float
) -> list[Loadgen]:
    """Split `conns` WebSocket connections over loadgen processes and start them."""
    per = max(1, min(ctx.conns_per_proc, raise_nofile() - 64))
    workers: list[Loadgen] = []
    for base in range(0, conns, per):
        count = min(per, conns - base)
        args = ["ws", *ctx.target_args(), *ctx.auth_args(), "--conns", str(count)]
        args += ["--index-base", str(base), "--timeout", str(int(limit_s)), *extra]
        workers.append(Loadgen(f"ws{len(workers)}", args, ctx.load_cpu))
    for worker in workers:
        await worker.start()
    return workers


async def wait_group_ready(workers: list[Loadgen], conns: int, label: str, limit_s: float) -> Json:
    """Wait until every worker has connected (and subscribed) all it could."""
    bar = Progress(f"{label} connect", conns, "conns")
    deadline = time.monotonic() + limit_s
    while not all(w.ready is not None and w.ready.done() for w in workers):
        bar.update(sum(max(w.progress.get("sub", 0), w.progress.get("est", 0)) for w in workers))
        if time.monotonic() > deadline:
            bar.close("timed out")
            raise TimeoutError(f"connections not ready after {limit_s:.0f}s")
        await asyncio.sleep(0.1)
    readies = [w.ready.result() for w in workers if w.ready is not None]
    ok = sum(r["ok"] for r in readies)
    failed = sum(r["failed"] for r in readies)
    connect_s = max(r["connect_s"] for r in readies)
    bar.update(ok)
    bar.close(f"{ok:,} ready, {failed:,} failed, {connect_s:.2f}s")
    return {"ok": ok, "failed": failed, "connect_s": connect_s}


async def finish_all(workers: Sequence[Loadgen]) -> list[Json]:
    return list(await asyncio.gather(*(w.finish() for w in workers)))


async def kill_all(workers: Sequence[Loadgen]) -> None:
    await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)


def pub_args(ctx: Context, events: int, conns: int, timeout: float, *extra: str) -> list[str]:
    args = ["pub", *ctx.target_args(), *ctx.auth_args(), "--events", str(events)]
    return [*args, "--conns", str(conns), "--timeout", str(int(timeout)), *extra]


def rx_total(workers: Sequence[Loadgen]) -> int:
    return sum(int(w.progress.get("rx", 0)) for w in workers)


def errors_of(reports: Sequence[Json]) -> str:
    for report in reports:
        if report.get("error"):
            return str(report["error"])
        if report.get("first_error") and report["first_error"] != "timeout":
            return str(report["first_error"])
    return ""


def close_codes(reports: Sequence[Json]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for report in reports:
        for code, count in report.get("close_codes", {}).items():
            codes[code] = codes.get(code, 0) + count
    return codes


# --- (a), (b), (c): publish over HTTP, count deliveries ------------------------------------


@dataclass(frozen=True)
class Fanout:
    label: str
    subscribers: int
    ws_channel: tuple[str, ...]  # loadgen ws options choosing each connection's channel
    pub_channel: tuple[str, ...]  # loadgen pub options choosing each event's channel
    events: int
    pub_conns: int
    rate: float  # events/s; 0 = as fast as accepted
    per_event: int  # deliveries expected per accepted event
    timeout: float


async def run_fanout(spec: Fanout, ctx: Context) -> Json:
    server = ctx.server
    workers = await start_ws_group(ctx, spec.subscribers, spec.ws_channel, spec.timeout)
    pub: Loadgen | None = None
    try:
        ready = await wait_group_ready(workers, spec.subscribers, spec.label, spec.timeout / 2)
        extra = [*spec.pub_channel, "--rate", str(spec.rate)]
        pub = Loadgen(
            "pub", pub_args(ctx, spec.events, spec.pub_conns, spec.timeout, *extra), ctx.load_cpu
        )
        await pub.start()
        pids = [w.pid for w in [*workers, pub]]
        with RssSampler(server.pid) as rss:
            before = Snapshot.take(server.pid, pids)
            sent = await _publish_and_drain(spec, workers, pub)
            after = Snapshot.take(server.pid, pids)
        reports = await finish_all(workers)
        pub_report = await pub.finish()
    finally:
        await kill_all([*workers, *([pub] if pub else [])])
    return fanout_metrics(spec, ready, reports, pub_report, before, after, rss.peak, sent)


async def _publish_and_drain(spec: Fanout, workers: list[Loadgen], pub: Loadgen) -> int:
    """Wait for the publisher, then for the deliveries (until complete or 3 s without any)."""
    expected = spec.events * spec.per_event
    bar = Progress(spec.label, expected, "deliveries")
    deadline = time.monotonic() + spec.timeout
    assert pub.result is not None
    while not pub.result.done() and time.monotonic() < deadline:
        bar.update(rx_total(workers), f"published {pub.progress.get('ok', 0):,}")
        await asyncio.sleep(0.1)
    accepted = int(pub.result.result().get("ok", 0)) if pub.result.done() else spec.events
    expected = accepted * spec.per_event
    last, last_change = rx_total(workers), time.monotonic()
    while last < expected and time.monotonic() - last_change < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now_rx = rx_total(workers)
        if now_rx != last:
            last, last_change = now_rx, time.monotonic()
        bar.update(now_rx)
    bar.close(f"{last:,}/{expected:,} deliveries")
    return accepted


def fanout_metrics(
    spec: Fanout,
    ready: Json,
    reports: list[Json],
    pub: Json,
    before: Snapshot,
    after: Snapshot,
    peak_rss: int,
    accepted: int,
) -> Json:
    delivered = sum(int(r.get("rx", 0)) for r in reports)
    first_send = int(pub.get("first_send_ns", 0))
    last_rx = max((int(r.get("last_rx_ns", 0)) for r in reports), default=0)
    window = (last_rx - first_send) / 1e9 if last_rx > first_send > 0 else 0.0
    pub_window = (int(pub.get("last_done_ns", 0)) - first_send) / 1e9 if first_send else 0.0
    cpu = cpu_between(before, after, window)
    hist = merge_hists([r.get("lat_us", []) for r in reports])
    metrics: Json = {
        "subscribers": ready["ok"],
        "events accepted": accepted,
        "deliveries": delivered,
        "deliveries/s": round(delivered / window) if window > 0 else None,
        "publishes/s": round(accepted / pub_window, 1) if pub_window > 0 else None,
        **latency_metrics(hist),
        "lost deliveries": max(0, accepted * spec.per_event - delivered),
        "server CPU %": cpu["server_cpu_pct"],
        "client CPU %": cpu["client_cpu_pct"],
        "other CPU %": cpu["other_cpu_pct"],
        "server us CPU/delivery": round(1e6 * cpu["server_cpu_s"] / delivered, 2)
        if delivered
        else None,
        "server peak RSS MB": round(peak_rss / MB, 1),
    }
    raw = {
        "window_s": round(window, 3),
        "cpu": cpu,
        "ready": ready,
        "non_200": {k: v for k, v in pub.get("status", {}).items() if k != "200"},
        "publisher_error": pub.get("first_error", ""),
        "close_codes": close_codes(reports),
        "errors": errors_of(reports),
    }
    return {"metrics": metrics, "raw": raw}


# --- (d) idle connections ------------------------------------------------------------------


async def run_idle(conns: int, settle: float, limit_s: float, ctx: Context) -> Json:
    server = ctx.server
    await asyncio.sleep(1.0)
    rss_before = rss_bytes(server.pid) if server.pid else 0
    snap0 = Snapshot.take(server.pid, [])
    workers = await start_ws_group(ctx, conns, ["--no-subscribe", "--inflight", "200"], limit_s)
    try:
        pids = [w.pid for w in workers]
        ready = await wait_group_ready(workers, conns, f"d idle {conns:,}", limit_s - settle - 5)
        snap1 = Snapshot.take(server.pid, pids)
        await asyncio.sleep(settle)
        rss_after = rss_bytes(server.pid) if server.pid else 0
        reports = await finish_all(workers)
    finally:
        await kill_all(workers)
    cpu = cpu_between(snap0, snap1, ready["connect_s"])
    ok = ready["ok"]
    per_conn = (rss_after - rss_before) / ok if ok and server.pid else None
    metrics: Json = {
        "connections": ok,
        "failed connections": ready["failed"],
        "connects/s": round(ok / ready["connect_s"]) if ready["connect_s"] > 0 else None,
        "server RSS before MB": round(rss_before / MB, 1),
        "server RSS after MB": round(rss_after / MB, 1),
        "KB RSS/connection": round(per_conn / 1024, 2) if per_conn is not None else None,
        "server CPU %": cpu["server_cpu_pct"],
        "client CPU %": cpu["client_cpu_pct"],
        "other CPU %": cpu["other_cpu_pct"],
        "server us CPU/connect": round(1e6 * cpu["server_cpu_s"] / ok, 1) if ok else None,
    }
    raw = {"cpu": cpu, "close_codes": close_codes(reports), "errors": errors_of(reports)}
    return {"metrics": metrics, "raw": raw}


# --- (e) HTTP API publish ------------------------------------------------------------------


async def run_http(duration: float, conns: int, ctx: Context) -> Json:
    server = ctx.server
    # 100 channels nobody subscribes to: the cost measured is HTTP + signature + JSON.
    extra = ["--channel-prefix", "http-", "--channel-count", "100", "--duration", str(duration)]
    pub = Loadgen("pub", pub_args(ctx, 10**9, conns, duration + 30, *extra), ctx.load_cpu)
    await pub.start()
    try:
        with RssSampler(server.pid) as rss:
            before = Snapshot.take(server.pid, [pub.pid])
            bar = Progress("e http publish", duration, "s")
            start = time.monotonic()
            assert pub.result is not None
            while not pub.result.done() and time.monotonic() - start < duration + 20:
                bar.update(time.monotonic() - start, f"{pub.progress.get('ok', 0):,} requests")
                await asyncio.sleep(0.1)
            after = Snapshot.take(server.pid, [pub.pid])
        report = await pub.finish()
        bar.close(f"{report.get('ok', 0):,} requests")
    finally:
        await pub.kill()
    ok = int(report.get("ok", 0))
    first, last = int(report.get("first_send_ns", 0)), int(report.get("last_done_ns", 0))
    window = (last - first) / 1e9 if last > first else 0.0
    cpu = cpu_between(before, after, window)
    metrics: Json = {
        "requests": ok,
        "requests/s": round(ok / window) if window > 0 else None,
        "non-200 responses": sum(v for k, v in report.get("status", {}).items() if k != "200"),
        **latency_metrics(merge_hists([report.get("req_lat_us", [])]), "request"),
        "server CPU %": cpu["server_cpu_pct"],
        "client CPU %": cpu["client_cpu_pct"],
        "other CPU %": cpu["other_cpu_pct"],
        "server us CPU/request": round(1e6 * cpu["server_cpu_s"] / ok, 1) if ok else None,
        "server peak RSS MB": round(rss.peak / MB, 1),
    }
    raw = {"cpu": cpu, "status": report.get("status", {}), "error": report.get("first_error", "")}
    return {"metrics": metrics, "raw": raw}


# --- (f) presence churn --------------------------------------------------------------------


async def run_presence(members: int, churners: int, duration: float, ctx: Context) -> Json:
    server = ctx.server
    extra = ["--presence", "presence-bench", "--churners", str(churners)]
    extra += ["--churn-duration", str(duration), "--inflight", "50"]
    workers = await start_ws_group(ctx, members, extra, duration + 60)
    try:
        ready = await wait_group_ready(workers, members, "f presence", 30)
        pids = [w.pid for w in workers]
        with RssSampler(server.pid) as rss:
            before = Snapshot.take(server.pid, pids)
            for worker in workers:
                await worker.send("go")
            bar = Progress("f presence churn", duration, "s")
            start = time.monotonic()
            while not all(w.churn_done.is_set() for w in workers):
                if time.monotonic() - start > duration + 15:
                    break
                joins = sum(int(w.progress.get("joins", 0)) for w in workers)
                bar.update(min(duration, time.monotonic() - start), f"{joins:,} joins")
                await asyncio.sleep(0.1)
            after = Snapshot.take(server.pid, pids)
        reports = await finish_all(workers)
        bar.close()
    finally:
        await kill_all(workers)
    return presence_metrics(ready, reports, before, after, rss.peak)


def presence_metrics(
    ready: Json, reports: list[Json], before: Snapshot, after: Snapshot, peak_rss: int
) -> Json:
    joins = sum(int(r.get("joins", 0)) for r in reports)
    leaves = sum(int(r.get("leaves", 0)) for r in reports)
    events = sum(int(r.get("member_events", 0)) for r in reports)
    t0 = min((int(r["churn_t0_ns"]) for r in reports if r.get("churn_t0_ns")), default=0)
    t1 = max((int(r["churn_t1_ns"]) for r in reports if r.get("churn_t1_ns")), default=0)
    window = (t1 - t0) / 1e9 if t1 > t0 else 0.0
    cpu = cpu_between(before, after, window)
    metrics: Json = {
        "members": ready["ok"],
        "joins/s": round(joins / window, 1) if window else None,
        "leaves/s": round(leaves / window, 1) if window else None,
        **latency_metrics(merge_hists([r.get("join_lat_us", []) for r in reports]), "join"),
        "member events/s": round(events / window) if window else None,
        "server CPU %": cpu["server_cpu_pct"],
        "client CPU %": cpu["client_cpu_pct"],
        "other CPU %": cpu["other_cpu_pct"],
        "server us CPU/join": round(1e6 * cpu["server_cpu_s"] / joins, 1) if joins else None,
        "server peak RSS MB": round(peak_rss / MB, 1),
    }
    raw = {"cpu": cpu, "close_codes": close_codes(reports), "errors": errors_of(reports)}
    return {"metrics": metrics, "raw": raw}


# --- the plan ------------------------------------------------------------------------------


def _fanout(n: int, events: int, timeout: float) -> Scenario:
    label = f"a fanout burst {n // 1000}k"
    spec = Fanout(
        label=label,
        subscribers=n,
        ws_channel=("--channel", "fanout"),
        pub_channel=("--channel", "fanout"),
        events=events,
        pub_conns=4,
        rate=0,
        per_event=n,
        timeout=timeout,
    )
    title = f"(a) fanout burst: {n:,} subscribers, {events:,} events"
    return Scenario(f"a{n // 1000}k", title, partial(run_fanout, spec), timeout + 30, n)


def plan(letters: str, quick: bool) -> list[Scenario]:
    """The scenarios to run, with quick (smaller) or full sizes."""
    scenarios: list[Scenario] = []
    if "a" in letters:
        sizes = [(1000, 100), (10000, 20)] if quick else [(1000, 500), (10000, 100)]
        scenarios += [_fanout(n, m, 60 if quick else 150) for n, m in sizes]
    if "b" in letters:
        seconds = 5 if quick else 15
        spec = Fanout(
            label="b paced fanout 1k",
            subscribers=1000,
            ws_channel=("--channel", "paced"),
            pub_channel=("--channel", "paced"),
            events=20 * seconds,
            pub_conns=4,
            rate=20,
            per_event=1000,
            timeout=seconds + 40,
        )
        title = f"(b) paced fanout: 1,000 subscribers, 20 events/s for {seconds}s"
        scenarios.append(Scenario("b", title, partial(run_fanout, spec), seconds + 70, 1000))
    if "c" in letters:
        events = 10000 if quick else 50000
        spec = Fanout(
            label="c many channels 10k",
            subscribers=10000,
            ws_channel=("--channel-prefix", "solo-"),
            pub_channel=("--channel-prefix", "solo-", "--channel-count", "10000"),
            events=events,
            pub_conns=16,
            rate=0,
            per_event=1,
            timeout=60 if quick else 150,
        )
        title = f"(c) many channels: 10,000 connections on their own channel, {events:,} events"
        scenarios.append(Scenario("c", title, partial(run_fanout, spec), spec.timeout + 30, 10000))
    if "d" in letters:
        for n in [10000] if quick else [10000, 50000]:
            title = f"(d) idle: {n:,} connections"
            timeout = 60 + n / 500
            scenarios.append(
                Scenario(
                    f"d{n // 1000}k", title, partial(run_idle, n, 3.0, timeout), timeout + 20, n
                )
            )
    if "e" in letters:
        seconds = 3 if quick else 10
        title = f"(e) HTTP API publish, 32 connections, {seconds}s"
        scenarios.append(Scenario("e", title, partial(run_http, seconds, 32), seconds + 60))
    if "f" in letters:
        seconds = 3 if quick else 10
        title = f"(f) presence churn: 100 members, 10 churning, {seconds}s"
        scenarios.append(
            Scenario("f", title, partial(run_presence, 100, 10, seconds), seconds + 90, 100)
        )
    return scenarios


def fd_limit_of(pid: int | None) -> int | None:
    """The soft RLIMIT_NOFILE of a running process, from /proc/PID/limits."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return None if value == "unlimited" else int(value)
    except (OSError, IndexError, ValueError):
        pass
    return None


def largest_feasible(wanted: int, limit: int) -> int:
    """The largest round number of connections under a file-descriptor limit."""
    return max(1000, math.floor((limit - 500) / 1000) * 1000) if wanted + 64 > limit else wanted
