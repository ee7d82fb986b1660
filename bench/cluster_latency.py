"""Publish-to-delivery latency through the backbone: same node vs another node.

Starts its own valkey and nats-server (from the test wheels), then for each backbone
(memory on one node as the baseline, Redis, NATS with Redis state) two nodes on loopback
ports. Subscribers sit on node A and node B; events are published through node A's HTTP
API at a steady rate with a wall-clock timestamp in the payload; each delivery's latency is
its receive time minus that timestamp.

    .venv/bin/python bench/cluster_latency.py [--events 400] [--rate 40] [--subscribers 50]

Bounded: every phase has a timeout; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import services  # noqa: E402

from ressonance.client import RestClient  # noqa: E402

APP = {"RESSONANCE_APP_ID": "1", "RESSONANCE_APP_KEY": "bench", "RESSONANCE_APP_SECRET": "s"}


def start_node(port: int, backbone: str, state: str, log: Path) -> subprocess.Popen[bytes]:
    # All subscribers connect from 127.0.0.1 at once: no per-address connection limit.
    config = log.with_suffix(".toml")
    config.write_text(
        "[server]\nmax_connections_per_ip_per_sec = -1\nmax_pending_connections_per_ip = -1\n"
    )
    args = [sys.executable, "-m", "ressonance", "serve", "--port", str(port)]
    args += ["--backbone", backbone, "--config", str(config)]
    args += ["--state", state] if state else []
    with log.open("wb") as out:
        process = subprocess.Popen(args, env={**os.environ, **APP}, stdout=out, stderr=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"node on {port} not ready:\n{log.read_text()}")


async def subscriber(
    session: aiohttp.ClientSession, port: int, expected: int, ready: asyncio.Event
) -> list[float]:
    latencies: list[float] = []
    url = f"ws://127.0.0.1:{port}/app/bench?protocol=7"
    async with session.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive_str()
        await ws.send_str('{"event":"pusher:subscribe","data":{"channel":"lat","auth":""}}')
        await ws.receive_str()
        ready.set()
        while len(latencies) < expected:
            text = await ws.receive_str()
            received = time.time_ns()
            message = orjson.loads(text)
            if message.get("event") == "tick":
                sent = orjson.loads(message["data"])["t"]
                latencies.append((received - sent) / 1e6)
    return latencies


async def measure(ports: tuple[int, int], events: int, rate: float, subs: int) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, asyncio.timeout(events / rate + 60):
        readies = [asyncio.Event() for _ in range(2 * subs)]
        tasks = [
            asyncio.create_task(subscriber(session, ports[i % 2], events, readies[i]))
            for i in range(2 * subs)
        ]
        for event in readies:
            await event.wait()
        await asyncio.sleep(0.5)
        async with RestClient("1", "bench", "s", f"http://127.0.0.1:{ports[0]}") as api:
            for _ in range(events):
                await api.trigger("lat", "tick", {"t": time.time_ns()})
                await asyncio.sleep(1 / rate)
        results = await asyncio.gather(*tasks)
    same = [x for i, r in enumerate(results) if i % 2 == 0 for x in r]
    other = [x for i, r in enumerate(results) if i % 2 == 1 for x in r]
    return {"same_node": summary(same), "other_node": summary(other)}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(pick(0.99), 3),
        "max_ms": round(ordered[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--subscribers", type=int, default=50, help="per node")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ressonance-latency-"))
    redis = services.valkey(work / "valkey")
    nats = services.nats(work / "nats")
    redis.start()
    nats.start()
    report: dict[str, object] = {}
    try:
        setups = {
            "memory (one node)": ("memory://", ""),
            "redis": (redis.url, ""),
            "nats + redis state": (nats.url, redis.url),
        }
        for name, (backbone, state) in setups.items():
            ports = (services.free_port(), services.free_port())
            nodes = [start_node(ports[0], backbone, state, work / f"{name[:5]}-a.log")]
            if backbone != "memory://":
                nodes.append(start_node(ports[1], backbone, state, work / f"{name[:5]}-b.log"))
            else:
                ports = (ports[0], ports[0])
            try:
                report[name] = asyncio.run(measure(ports, args.events, args.rate, args.subscribers))
            finally:
                for node in nodes:
                    node.send_signal(signal.SIGTERM)
                    node.wait(30)
            print(name, json.dumps(report[name]), flush=True)
    finally:
        nats.stop()
        redis.stop()
    out = REPO / "bench" / "results" / f"cluster-latency-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": report}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
