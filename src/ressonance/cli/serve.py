"""`ressonance serve`: load settings, build a node (or several workers) and run it."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path

from ressonance.apps.admin import AppAdmin
from ressonance.apps.base import AppRegistry
from ressonance.apps.catalog import AppCatalog
from ressonance.apps.sourcing import open_app_registry
from ressonance.backbone.base import BackboneUnavailableError
from ressonance.cli import examples
from ressonance.cli.banner import banner
from ressonance.config import LOG_LEVELS, Settings, load_settings
from ressonance.protocol.app import App
from ressonance.protocol.errors import ConfigError
from ressonance.protocol.urls import redacted_url
from ressonance.server.admin_api import AdminApi
from ressonance.server.service import build_node, serve
from ressonance.server.tls import Certificate, TlsError
from ressonance.server.transport import TransportLimits
from ressonance.state.base import UsageStore, WebhookQueue


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = examples.with_examples(commands, "serve", "run a node (WebSocket + HTTP API on one port)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default 6001)")
    run.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file with [server] and [[apps]] (default: $RESSONANCE_CONFIG)",
    )
    verbosity = run.add_mutually_exclusive_group()
    verbosity.add_argument(
        "--log-level", type=str.lower, choices=LOG_LEVELS, help="debug, info, warning or error"
    )
    verbosity.add_argument(
        "--debug",
        action="store_true",
        help="log every connection, subscription, API call and refusal (= --log-level debug)",
    )
    run.add_argument(
        "--backbone", metavar="URL", help="memory:// (default), redis://host:6379/0 or nats://host"
    )
    run.add_argument(
        "--state", metavar="URL", help="shared state, redis://... (default: the Redis backbone)"
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="node processes sharing the port (needs a shared backbone)",
    )
    run.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate (chain): serve https:// and wss:// (reloaded on SIGHUP)",
    )
    run.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    run.add_argument(
        "--apps",
        metavar="URL",
        help="app store: sqlite:///path.db, postgresql://... or apps.toml "
        "(default: [[apps]] of --config, else sqlite in the state directory)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the settings the flags name (flags > environment > file) and run the server."""
    try:
        settings = load_settings(
            config_file=args.config,
            host=args.host,
            port=args.port,
            backbone=args.backbone,
            state=args.state,
            workers=args.workers,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            apps=args.apps,
            log_level="debug" if args.debug else args.log_level,
        )
    except ConfigError as exc:
        print(f"ressonance: configuration error: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    return run_server(settings)


def _configure_logging(settings: Settings) -> None:
    """Ours at the level asked for; other libraries' warnings and errors only, since their
    debug and info lines (aiosqlite's every query, asyncio's, aiohttp's access log) are noise
    to an operator."""
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(
        level=max(level, logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("ressonance").setLevel(level)


def run_server(settings: Settings) -> int:
    """Run one node, or `settings.workers` node processes on one port."""
    if settings.workers > 1:
        try:  # once, before the workers: migrations and the development app are not raced
            apps = asyncio.run(load_apps(settings))
        except ConfigError as exc:
            print(f"ressonance: configuration error: {exc}", file=sys.stderr)
            return 2
        return run_workers(settings, apps)
    return run_node(settings, announce=True)


async def load_apps(settings: Settings) -> list[App]:
    """The apps the settings name, as a node would serve them now."""
    registry = await open_app_registry(settings.app_source)
    try:
        catalog = AppCatalog(registry, settings.plan_map)
        await catalog.refresh()
        return await catalog.all()
    finally:
        await registry.close()


def run_node(settings: Settings, *, announce: bool, reuse_port: bool = False) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is in the default install
        pass
    _tune_gc()
    certificate = None
    if settings.tls:
        try:  # checked by load_settings; read again here, as every worker loads its own
            certificate = Certificate.load(settings.tls_cert, settings.tls_key)
        except TlsError as exc:
            print(f"ressonance: TLS {exc.setting}: {exc.message}", file=sys.stderr)
            return 2
    try:
        asyncio.run(_serve(settings, certificate, announce=announce, reuse_port=reuse_port))
    except ConfigError as exc:
        print(f"ressonance: configuration error: {exc}", file=sys.stderr)
        return 2
    except BackboneUnavailableError as exc:
        print(
            f"ressonance: cannot reach the backbone {redacted_url(settings.backbone)}: {exc}",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"ressonance: {listen_problem(settings, exc)}", file=sys.stderr)
        return 1
    return 0


def listen_problem(settings: Settings, exc: OSError) -> str:
    """Why the port could not be opened, and what to do about it."""
    where = f"cannot listen on {settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is in use (another Ressonance, or another program: "
            f"`ss -ltnp 'sport = :{settings.port}'` names it); stop it, or choose another "
            "port with --port (or RESSONANCE_PORT)"
        )
    if exc.errno == errno.EACCES:
        return (
            f"{where}: permission denied (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE); choose a port from 1024 with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where}: this machine has no address {settings.host}; use one of its "
            "addresses, or 0.0.0.0 for all of them (--host)"
        )
    return f"{where}: {exc.strerror or exc}"


async def _serve(
    settings: Settings, certificate: Certificate | None, *, announce: bool, reuse_port: bool
) -> None:
    """Open the app registry, build the node on it, serve until stopped; close the registry."""
    registry = await open_app_registry(settings.app_source)
    try:
        catalog = AppCatalog(registry, settings.plan_map)
        await catalog.refresh()
        node = build_node(
            catalog,
            backbone_url=settings.backbone,
            state_url=settings.state_url,
            prefix=settings.key_prefix,
            node_ttl=settings.node_ttl,
            wire_version=settings.backbone_wire_version,
            max_buffer_bytes=settings.max_buffer_kb * 1024,
            max_buffer_messages=settings.max_buffer_messages,
            state_dir=Path(settings.state_dir) if settings.state_dir else None,
            webhook_leave_delay=settings.webhook_leave_delay,
        )
        limits = TransportLimits(
            max_ws_message_bytes=settings.max_ws_message_kb * 1024,
            max_http_body_bytes=settings.max_http_body_kb * 1024,
        )
        apps = await catalog.all()

        def ready() -> None:
            if announce:
                print(banner(settings, apps), flush=True)

        await serve(
            node,
            host=settings.host,
            port=settings.port,
            limits=limits,
            admission=settings.admission,
            timer_interval=settings.timer_interval,
            liveness_interval=settings.node_ttl / 3,
            drain_seconds=settings.drain_seconds,
            reuse_port=reuse_port,
            certificate=certificate,
            catalog=catalog,
            apps_refresh_seconds=settings.apps_refresh_seconds,
            admin=admin_api(settings, registry, node.usage, node.webhooks),
            webhooks=settings.webhooks,
            on_ready=ready,
            connections=settings.connection_limits,
        )
    finally:
        await registry.close()


def admin_api(
    settings: Settings, registry: AppRegistry, usage: UsageStore, webhooks: WebhookQueue
) -> AdminApi | None:
    """The admin API over the node's registry, usage and webhook queue, when a token is set."""
    if not settings.admin_token:
        return None
    admin = AppAdmin(registry, settings.plan_map)
    return AdminApi(admin, usage, webhooks, token=settings.admin_token)


def _worker(settings: Settings) -> None:
    _configure_logging(settings)
    raise SystemExit(run_node(settings, announce=False, reuse_port=True))


# Container objects allocated (net) between two collections of the youngest generation.
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """Spare the cyclic GC the work a connection server does not need from it.

    Everything imported so far lives as long as the process: `gc.freeze()` keeps it out of
    every collection. A node then holds ~10 container objects per idle connection; with
    CPython's default threshold (700) they are rescanned by a young collection every few
    dozen connects, which cost ~20 % of a connect's CPU under a connection storm
    (docs/benchmarks.md). Closed connections are freed by reference counting, not by the GC.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_workers(settings: Settings, apps: list[App]) -> int:
    """Start N node processes on one port (SO_REUSEPORT) and wait for all of them."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(settings,), name=f"ressonance-worker-{index}")
        for index in range(settings.workers)
    ]

    def forward(signum: int, _: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if settings.tls:
        signal.signal(signal.SIGHUP, forward)  # every worker reloads its certificate
    for worker in workers:
        worker.start()
    print(banner(settings, apps), flush=True)
    print(
        f"  {settings.workers} worker processes over {redacted_url(settings.backbone)}", flush=True
    )
    for worker in workers:
        worker.join()
    return max(worker.exitcode or 0 for worker in workers)
