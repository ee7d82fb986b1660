"""What `ressonance --help`, `serve --help` and `apps --help` show: a line on what the
command is for, then examples a person can paste.

Rules: every example is a command that works as written against the current flags and
settings (tests/cli/test_help.py runs the parser on each); no docstring of ours is shown.
"""

from __future__ import annotations

import argparse
from typing import Final

RESSONANCE: Final = """\
Ressonance: a self-hosted Pusher Channels server (pusher-js, Laravel Echo and the
Pusher server SDKs connect to it as they connect to Pusher)."""

RESSONANCE_EXAMPLES: Final = """\
examples:
  ressonance serve                          one node on 127.0.0.1:6001, a development app
  ressonance serve --host 0.0.0.0 --config ressonance.toml
  ressonance apps create --name shop        a new app: its id, key and secret
  ressonance apps list
  ressonance serve --help                   every flag of serve (and `apps --help`)

Docs: docs/configuration.md (every setting and its RESSONANCE_* variable),
docs/howto/debugging.md (logs)."""

SERVE: Final = """\
Run one node: WebSockets (/app/KEY), the Pusher HTTP API (/apps/ID/...), /healthz,
/readyz and /metrics, all on one port. Every flag has a RESSONANCE_* variable and a
[server] key (flag > variable > file); see docs/configuration.md."""

SERVE_EXAMPLES: Final = """\
examples:
  ressonance serve
      one node on 127.0.0.1:6001 with a development app; the banner shows its key
  ressonance serve --host 0.0.0.0 --port 6001 --config /etc/ressonance/ressonance.toml
  ressonance serve --debug
      log every connection, subscription, API call and refusal
  RESSONANCE_PORT=6002 RESSONANCE_LOG_LEVEL=warning ressonance serve
      the same settings from the environment (a container)
  ressonance serve --backbone redis://127.0.0.1:6379/0 --workers 4
      four processes on one port, clustered over Redis (scaling.md)
  ressonance serve --apps postgresql://ressonance:secret@db/ressonance
      apps from PostgreSQL, managed with `ressonance apps` or the admin API"""

APPS: Final = """\
Create, list, change and delete the apps of the store `serve` reads (found the way
`serve` finds it: --config, --apps, or the embedded store). Changes reach running
nodes within apps_refresh_seconds; no restart."""

APPS_EXAMPLES: Final = """\
examples:
  ressonance apps create --name shop --plan free
      prints the new app's id, key and secret (the secret only here)
  ressonance apps list
  ressonance apps update 1234567 --set enable_client_messages=true
  ressonance apps rotate-secret 1234567
  ressonance apps disable 1234567
  ressonance apps list --apps postgresql://ressonance:secret@db/ressonance --json
  ressonance apps create --help             every flag of a verb"""


_TEXTS: Final = {"serve": (SERVE, SERVE_EXAMPLES), "apps": (APPS, APPS_EXAMPLES)}


def with_examples(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """The subcommand `name`, its --help made of its description and examples."""
    description, epilog = _TEXTS[name]
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
