"""The `ressonance` command: one subcommand per module (`serve`, `apps`), dispatched here.

Each subcommand module has `add_parser(commands)` and `run(args) -> exit status`; this
package only builds the parser and calls the chosen one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ressonance import __version__
from ressonance.cli import apps, examples, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ressonance",
        description=examples.RESSONANCE,
        epilog=examples.RESSONANCE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ressonance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(commands)
    apps.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "apps":
        return apps.run(args)
    return serve.run(args)
