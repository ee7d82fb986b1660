"""The `ressonance` command: parse arguments, load settings, build a node and run it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from ressonance import __version__
from ressonance.config import LOG_LEVELS, Settings, load_settings
from ressonance.protocol.app import App
from ressonance.protocol.errors import ConfigError
from ressonance.server.service import memory_node, serve
from ressonance.server.transport import TransportLimits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ressonance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ressonance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run a node (WebSocket + HTTP API on one port)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default 6001)")
    run.add_argument("--config", metavar="FILE", help="TOML config file with [server] and [[apps]]")
    run.add_argument(
        "--log-level", type=str.lower, choices=LOG_LEVELS, help="debug, info, warning or error"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(config_file=args.config, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"ressonance: configuration error: {exc}", file=sys.stderr)
        return 2
    level = (args.log_level or settings.log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_server(settings)


def run_server(settings: Settings) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is in the default install
        pass
    node = memory_node(settings.apps, max_buffer_bytes=settings.max_buffer_kb * 1024)
    limits = TransportLimits(
        max_ws_message_bytes=settings.max_ws_message_kb * 1024,
        max_http_body_bytes=settings.max_http_body_kb * 1024,
    )

    def announce() -> None:
        print(banner(settings), flush=True)

    try:
        asyncio.run(
            serve(
                node,
                host=settings.host,
                port=settings.port,
                limits=limits,
                timer_interval=settings.timer_interval,
                on_ready=announce,
            )
        )
    except OSError as exc:
        print(
            f"ressonance: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


def banner(settings: Settings) -> str:
    """What a person sees at start: where it listens and, for the dev app, how to connect."""
    lines = [f"Ressonance {__version__} listening on http://{settings.host}:{settings.port}"]
    for app in settings.apps:
        lines.append(f"  app {app.id} key={app.key}{' (disabled)' if not app.enabled else ''}")
    if settings.dev_app:
        lines += _dev_snippets(settings.apps[0], settings.host, settings.port)
    return "\n".join(lines)


def _dev_snippets(app: App, host: str, port: int) -> list[str]:
    return [
        "",
        "No app configured: created a development app.",
        f"  app_id: {app.id}",
        f"  key:    {app.key}",
        f"  secret: {app.secret}",
        "",
        "pusher-js:",
        f"  new Pusher('{app.key}', {{ wsHost: '{host}', wsPort: {port}, forceTLS: false,",
        "    enabledTransports: ['ws', 'wss'], cluster: '' });",
        "",
        "Laravel .env:",
        "  BROADCAST_CONNECTION=pusher",
        f"  PUSHER_APP_ID={app.id}",
        f"  PUSHER_APP_KEY={app.key}",
        f"  PUSHER_APP_SECRET={app.secret}",
        f"  PUSHER_HOST={host}",
        f"  PUSHER_PORT={port}",
        "  PUSHER_SCHEME=http",
        "  PUSHER_APP_CLUSTER=mt1",
        "",
    ]
