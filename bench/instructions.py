"""Instructions the server executes per operation, counted by callgrind: one command.

    .venv/bin/python bench/instructions.py --baseline 9617034

Wall-clock figures on a shared 2-core machine cannot show a change of a few percent; the
number of user-space instructions (callgrind's Ir) the server process executes per operation
can, and repeats from run to run. For each target (this checkout, and with `--baseline REF`
the revision REF in a temporary worktree) this starts `python -m ressonance serve` under
`valgrind --tool=callgrind` (about 50x slower: sizes are small and every wait is generous),
and for each operation: warms it up, zeroes the counters (`callgrind_control -z`), runs the
operation N times from this process on loopback, waiting for every answer, dumps (`-d`) and
reads the total Ir; then zeroes, sleeps as long again and dumps: the event loop's idle ticks,
subtracted. The server's hash seed is fixed (PYTHONHASHSEED=0). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_DIR, Credentials, Json, RessonanceServer, free_port, log
from run import RESULTS_DIR, _command_output, baseline_checkout

OPERATIONS = ("connect", "publish", "fanout", "presence")
UNITS = {
    "connect": "per WebSocket connect + close (handshake, connection_established, close)",
    "publish": "per signed HTTP publish (POST /apps/{id}/events, keep-alive, no subscriber)",
    "fanout": "per delivered message (one public channel; the publish's share included)",
    "presence": "per presence subscribe + unsubscribe (one connection, valid auth)",
    "fanout net": "fanout less its publishes' share (publish Ir/op x publishes / deliveries)",
}
TIMEOUT = aiohttp.ClientTimeout(total=600)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=600, ws_close=600)


@dataclass
class CallgrindServer(RessonanceServer):
    """A Ressonance node under callgrind; counts are read from dumps in `out_dir`."""

    out_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-cg-")))
    keep_dir: Path | None = None  # --keep-dumps: where the operations' dumps are kept

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        argv, env, cwd = super().command()
        env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every run
        valgrind = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--collect-atstart=yes"]
        valgrind.append(f"--callgrind-out-file={self.out_dir / 'callgrind.out'}")
        return [*valgrind, *argv], env, cwd

    async def wait_ready(self, wait_s: float = 600.0) -> None:
        await super().wait_ready(wait_s)

    async def control(self, flag: str) -> None:
        """`callgrind_control -z` (zero) or `-d` (dump), waiting for it to be done."""
        proc = await asyncio.create_subprocess_exec(
            "callgrind_control",
            flag,
            str(self.pid),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
        if proc.returncode != 0 or b"OK" not in out:
            raise RuntimeError(f"callgrind_control {flag} {self.pid}: {out.decode()!r}")

    def take_dump(self, keep_as: str = "") -> int:
        """The Ir `summary:` of the newest dump (the counts since the last zero).

        The dump is removed, or moved to `keep_dir`/`keep_as` (for callgrind_annotate).
        """
        dumps = sorted(self.out_dir.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        text = dumps[-1].read_text()
        if keep_as and self.keep_dir is not None:
            shutil.move(dumps[-1], self.keep_dir / f"{self.name}-{keep_as}.callgrind")
        else:
            dumps[-1].unlink()
        summary = [line for line in text.splitlines() if line.startswith("summary:")]
        return int(summary[0].split()[1])

    async def count(self, operation: str, work: Callable[[], Awaitable[None]]) -> Json:
        """Ir of `work` less the Ir of an idle window as long."""
        started = time.monotonic()
        await self.control("-z")
        await work()
        await asyncio.sleep(1.0)  # the server finishes what follows its last answer (closes)
        await self.control("-d")
        busy, wall = self.take_dump(operation), time.monotonic() - started
        await self.control("-z")
        await asyncio.sleep(wall)
        await self.control("-d")
        idle = self.take_dump()
        return {"busy_ir": busy, "idle_ir": idle, "seconds": round(wall, 1)}


# --- the operations, driven from this process ----------------------------------------------


def signed_publish(creds: Credentials, channel: str, n: int) -> tuple[str, bytes]:
    """The path+query and body of a signed HTTP API publish (Pusher HTTP API, auth_version 1.0)."""
    body = json.dumps({"name": "bench", "channel": channel, "data": json.dumps({"n": n})}).encode()
    path = f"/apps/{creds.app_id}/events"
    params = {
        "auth_key": creds.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    digest = hmac.new(creds.secret.encode(), f"POST\n{path}\n{query}".encode(), hashlib.sha256)
    return f"{path}?{query}&auth_signature={digest.hexdigest()}", body


@dataclass
class Driver:
    """The client side: one aiohttp session to the server under count."""

    server: CallgrindServer
    session: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    async def open_socket(self) -> tuple[aiohttp.ClientWebSocketResponse, str]:
        url = f"{self.base}/app/{self.server.creds.key}?protocol=7&client=bench&version=1"
        ws = await self.session.ws_connect(url, timeout=WS_TIMEOUT, autoping=True)
        hello = await ws.receive_json()
        if hello.get("event") != "pusher:connection_established":
            raise RuntimeError(f"unexpected first frame: {hello}")
        return ws, json.loads(hello["data"])["socket_id"]

    async def connects(self, n: int) -> None:
        for _ in range(n):
            ws, _socket_id = await self.open_socket()
            await ws.close()

    async def publish(self, channel: str, n: int) -> None:
        url, body = signed_publish(self.server.creds, channel, n)
        async with self.session.post(self.base + url, data=body) as response:
            if response.status != 200:
                raise RuntimeError(f"publish: {response.status} {await response.text()}")
            await response.read()

    async def publishes(self, n: int) -> None:
        for i in range(n):
            await self.publish("nobody-listens", i)


async def expect(ws: aiohttp.ClientWebSocketResponse, event: str) -> Json:
    """The next frame named `event` (others, such as pusher:ping, are skipped)."""
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket ended waiting for {event}: {message.type}")
        frame: Json = json.loads(message.data)
        if frame.get("event") == event:
            return frame


async def run_fanout(driver: Driver, subscribers: int, publishes: int) -> Json:
    sockets = [(await driver.open_socket())[0] for _ in range(subscribers)]
    for ws in sockets:
        await ws.send_json({"event": "pusher:subscribe", "data": {"channel": "fanout"}})
        await expect(ws, "pusher_internal:subscription_succeeded")

    async def deliver(count: int) -> None:
        for i in range(count):
            await driver.publish("fanout", i)
            await asyncio.gather(*(expect(ws, "bench") for ws in sockets))

    try:
        await deliver(2)
        result = await driver.server.count("fanout", lambda: deliver(publishes))
    finally:
        for ws in sockets:
            await ws.close()
    return {**result, "operations": subscribers * publishes, "publishes": publishes}


async def run_presence(driver: Driver, n: int, warmup: int) -> Json:
    ws, socket_id = await driver.open_socket()
    creds, channel = driver.server.creds, "presence-bench"
    channel_data = json.dumps({"user_id": "u1", "user_info": {"name": "bench"}})
    subject = f"{socket_id}:{channel}:{channel_data}"
    digest = hmac.new(creds.secret.encode(), subject.encode(), hashlib.sha256).hexdigest()
    data = {"channel": channel, "auth": f"{creds.key}:{digest}", "channel_data": channel_data}

    async def joins(count: int) -> None:
        for _ in range(count):
            await ws.send_json({"event": "pusher:subscribe", "data": data})
            await expect(ws, "pusher_internal:subscription_succeeded")
            await ws.send_json({"event": "pusher:unsubscribe", "data": {"channel": channel}})
        await ws.send_json({"event": "pusher:ping", "data": {}})
        await expect(ws, "pusher:pong")  # the last unsubscribe is done

    try:
        await joins(warmup)
        result = await driver.server.count("presence", lambda: joins(n))
    finally:
        await ws.close()
    return {**result, "operations": n}


async def run_operation(driver: Driver, name: str, args: argparse.Namespace) -> Json:
    n, warmup = args.n, max(10, args.n // 10)
    if name == "fanout":
        return await run_fanout(driver, args.subscribers, args.publishes)
    if name == "presence":
        return await run_presence(driver, n, warmup)
    work = driver.connects if name == "connect" else driver.publishes
    await work(warmup)
    return {**await driver.server.count(name, lambda: work(n)), "operations": n}


async def measure_target(name: str, source: Path, args: argparse.Namespace) -> dict[str, Json]:
    port = free_port("127.0.0.1", args.port_base)
    server = CallgrindServer(name, "127.0.0.1", port, Credentials(), source=source)
    server.keep_dir = args.keep_dumps
    results: dict[str, Json] = {}
    log(f"instructions: {name}: starting the server under callgrind ({source})")
    try:
        await server.start()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            driver = Driver(server, session)
            for operation in args.operations:
                record = await run_operation(driver, operation, args)
                net = record["busy_ir"] - record["idle_ir"]
                record["ir_per_op"] = round(net / record["operations"])
                results[operation] = record
                log(f"  {name} {operation}: {record['ir_per_op']:,} Ir/op ({record})")
    except Exception:
        log(f"instructions: {name} failed; the server's log ends with:\n{server.log_tail()}")
        raise
    finally:
        await server.stop()
        shutil.rmtree(server.out_dir, ignore_errors=True)
    return results


# --- report --------------------------------------------------------------------------------


def net_of(per_op: dict[str, Json]) -> int:
    """Ir per delivery once the fanout's publishes are taken out at their measured cost."""
    fanout, publish = per_op["fanout"], per_op["publish"]
    publishes: int = publish["ir_per_op"] * fanout["publishes"]
    deliveries, per_delivery = int(fanout["operations"]), int(fanout["ir_per_op"])
    return round((per_delivery * deliveries - publishes) / deliveries)


def rows_of(results: dict[str, dict[str, Json]], operations: list[str]) -> list[Json]:
    rows: list[Json] = []
    net = {"fanout", "publish"} <= set(operations)
    for operation in [*operations, *(["fanout net"] if net else [])]:
        row: Json = {"operation": operation, "unit": UNITS[operation]}
        for target, per_op in results.items():
            row[target] = per_op[operation]["ir_per_op"] if operation in per_op else net_of(per_op)
        if "baseline" in results:
            row["ratio"] = round(row["this checkout"] / row["baseline"], 3)
            row["delta"] = row["this checkout"] - row["baseline"]
        rows.append(row)
    return rows


def table(rows: list[Json], targets: list[str], markdown: bool) -> str:
    headers = ["operation", *(f"{t} (Ir/op)" for t in targets)]
    headers += ["ratio", "difference"] if "baseline" in targets else []
    lines = [[r["operation"], *(f"{r[t]:,}" for t in targets)] for r in rows]
    if "baseline" in targets:
        for line, row in zip(lines, rows, strict=True):
            line += [f"{row['ratio']:.3f}", f"{row['delta']:+,}"]
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*headers)] + [fmt.format(*line) for line in lines])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", metavar="REF", help="also count git revision REF")
    parser.add_argument("--n", type=int, default=500, help="connects, publishes, presence joins")
    parser.add_argument("--subscribers", type=int, default=200, help="fanout: subscribers")
    parser.add_argument("--publishes", type=int, default=100, help="fanout: publishes")
    parser.add_argument("--only", default=",".join(OPERATIONS), help="operations, comma-separated")
    parser.add_argument("--port-base", type=int, default=7600, help="first loopback port to try")
    parser.add_argument(
        "--keep-dumps", type=Path, help="keep each operation's dump here (callgrind_annotate)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for JSON/Markdown")
    args = parser.parse_args(argv)
    args.operations = [o for o in args.only.split(",") if o]
    if unknown := set(args.operations) - set(OPERATIONS):
        parser.error(f"unknown operations {sorted(unknown)}; known: {', '.join(OPERATIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("instructions: valgrind (with callgrind_control) is needed")
    if args.keep_dumps:
        args.keep_dumps.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, dict[str, Json]] = {}
    with baseline_checkout(args.baseline) as baseline_src:
        results["this checkout"] = asyncio.run(measure_target("this", REPO_DIR / "src", args))
        if baseline_src is not None:
            results["baseline"] = asyncio.run(measure_target("baseline", baseline_src, args))
    rows, targets = rows_of(results, args.operations), list(results)
    document: Json = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": _command_output(["git", "describe", "--always", "--dirty"], REPO_DIR),
        "baseline": args.baseline
        and _command_output(["git", "rev-parse", args.baseline], REPO_DIR),
        "valgrind": _command_output(["valgrind", "--version"]),
        "seconds": round(time.monotonic() - started, 1),
        "summary": rows,
        "runs": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-instructions"
    base.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
    units = "\n".join(f"- {r['operation']}: {r['unit']}" for r in rows)
    base.with_suffix(".md").write_text(f"{table(rows, targets, True)}\n\n{units}\n")
    print(table(rows, targets, markdown=False))
    print(f"\nresults: {base}.json (and .md) in {document['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("instructions: Linux only (valgrind)")
    raise SystemExit(main())
