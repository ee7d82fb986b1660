"""What a person sees when a node starts: where it listens, its apps and where they come
from, its endpoints, whether the admin API is on, and how to stop it.

Rules:
1. It tells the truth: the number of apps served and their store (its URL without a
   password, the config file, the environment), the admin API on or off.
2. Bounded: at most `SHOWN_APPS` apps are listed, then how many more and how to list them.
3. No secret, except the development app's while it is the only app of the embedded store:
   then how to connect is printed, with its credentials, as the quick start promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ressonance import __version__
from ressonance.apps import SHOWN_LIMIT
from ressonance.apps.sourcing import DEV_APP_NAME
from ressonance.config import Settings
from ressonance.protocol.app import App
from ressonance.protocol.urls import redacted_url
from ressonance.server.admin_api import PREFIX as ADMIN_PREFIX

SHOWN_APPS: Final = 10
_BIND_ALL: Final = ("0.0.0.0", "::", "")


def banner(settings: Settings, apps: Sequence[App] | None = None) -> str:
    """The start banner of a node serving `apps` (the settings' static apps when None)."""
    apps = settings.apps if apps is None else apps
    base = f"{'https' if settings.tls else 'http'}://{_dialable(settings.host)}:{settings.port}"
    lines = [
        f"Ressonance {__version__} listening on "
        f"{'https' if settings.tls else 'http'}://{_url_host(settings.host)}:{settings.port}",
        f"  apps:      {_source(settings, len(apps))}",
        *_listed(apps),
        f"  HTTP API:  {base}/apps/{{app_id}}/events (signed with the app's secret)",
        f"  health:    {base}/healthz, readiness {base}/readyz",
        f"  metrics:   {base}/metrics",
        f"  admin API: {_admin(settings, base)}",
        f"  logs:      {settings.log_level} on stderr"
        + ("" if settings.log_level == "debug" else " (--debug: every connection and request)"),
        f"  stop:      Ctrl+C or SIGTERM (clients move on over {settings.drain_seconds:g} s)",
    ]
    development = [app for app in apps if app.name == DEV_APP_NAME]
    if settings.dev_app and len(apps) == 1 and development:
        lines += _dev_snippets(development[0], settings.host, settings.port, tls=settings.tls)
    return "\n".join(lines)


def _source(settings: Settings, count: int) -> str:
    """How many apps, and where they come from (rule 1)."""
    served = f"{count} app{'' if count == 1 else 's'}"
    if settings.apps_url:
        return f"{served} in {redacted_url(settings.apps_url, SHOWN_LIMIT)}"
    if settings.apps:
        places = []
        if settings.apps_file:
            places.append(f"[[apps]] of {settings.apps_file}")
        if settings.env_apps:
            places.append("RESSONANCE_APP_* variables")
        return f"{served} from {' and '.join(places) or 'the settings'}"
    store = redacted_url(settings.registry_url, SHOWN_LIMIT)
    if not count:
        return (
            f"none yet, in {store} (the embedded store): add one with "
            "`ressonance apps create`, or [[apps]] in --config"
        )
    return f"{served} in {store} (the embedded store)"


def _listed(apps: Sequence[App]) -> list[str]:
    lines = [
        f"    {app.id} key={app.key}"
        + (f" ({app.name})" if app.name == DEV_APP_NAME else "")
        + ("" if app.enabled else " (disabled)")
        for app in apps[:SHOWN_APPS]
    ]
    if len(apps) > SHOWN_APPS:
        lines.append(f"    ... and {len(apps) - SHOWN_APPS} more: `ressonance apps list`")
    return lines


def _admin(settings: Settings, base: str) -> str:
    if settings.admin_token:
        return f"on, {base}{ADMIN_PREFIX}/apps (Authorization: Bearer <token>)"
    return "off (set RESSONANCE_ADMIN_TOKEN to turn it on)"


def _dialable(host: str) -> str:
    """An address a browser on this machine can dial for `host` (a bind-all one is not)."""
    return "127.0.0.1" if host in _BIND_ALL else _url_host(host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _dev_snippets(app: App, host: str, port: int, *, tls: bool = False) -> list[str]:
    host = _dialable(host)
    port_option = "wssPort" if tls else "wsPort"
    return [
        "",
        "No app configured: using the development app.",
        f"  app_id: {app.id}",
        f"  key:    {app.key}",
        f"  secret: {app.secret}",
        "",
        "pusher-js:",
        f"  new Pusher('{app.key}', {{ wsHost: '{host}', {port_option}: {port},"
        f" forceTLS: {'true' if tls else 'false'},",
        "    enabledTransports: ['ws', 'wss'], cluster: '' });",
        "",
        "Laravel .env:",
        "  BROADCAST_CONNECTION=pusher",
        f"  PUSHER_APP_ID={app.id}",
        f"  PUSHER_APP_KEY={app.key}",
        f"  PUSHER_APP_SECRET={app.secret}",
        f"  PUSHER_HOST={host}",
        f"  PUSHER_PORT={port}",
        f"  PUSHER_SCHEME={'https' if tls else 'http'}",
        "  PUSHER_APP_CLUSTER=mt1",
        '  VITE_PUSHER_APP_KEY="${PUSHER_APP_KEY}"',
        '  VITE_PUSHER_HOST="${PUSHER_HOST}"',
        '  VITE_PUSHER_PORT="${PUSHER_PORT}"',
        '  VITE_PUSHER_SCHEME="${PUSHER_SCHEME}"',
        '  VITE_PUSHER_APP_CLUSTER="${PUSHER_APP_CLUSTER}"',
        "",
    ]
