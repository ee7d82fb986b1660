"""`--help` as a newcomer reads it: what the command is for and examples, never a docstring.

Every example is parsed by the real parser, so an example cannot name a flag that does not
exist.
"""

from __future__ import annotations

import re
import shlex

import pytest

from ressonance import cli
from ressonance.cli import examples


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "a self-hosted Pusher Channels server"),
        (["serve"], "Every flag has a RESSONANCE_* variable"),
        (["apps"], "Changes reach running\nnodes within apps_refresh_seconds"),
    ],
)
def test_help_shows_what_the_command_is_for_and_examples(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    text = help_of(argv, capsys)

    assert says in text
    assert "\nexamples:\n  ressonance " in text
    assert "parse arguments, load settings" not in text  # the old docstring


def example_commands() -> list[list[str]]:
    """Every `ressonance ...` example, as argv (variables and descriptions left out)."""
    commands = []
    for text in (examples.RESSONANCE_EXAMPLES, examples.SERVE_EXAMPLES, examples.APPS_EXAMPLES):
        for line in text.splitlines():
            match = re.match(r"^  (?:[A-Z_]+=\S+ )*ressonance (.+?)(?:\s{2,}.*)?$", line)
            if match:
                commands.append(shlex.split(match.group(1)))
    return commands


@pytest.mark.parametrize("argv", example_commands(), ids=" ".join)
def test_every_example_parses(argv: list[str]) -> None:
    if "--help" in argv:
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args(argv)
        assert exited.value.code == 0
        return
    cli.build_parser().parse_args(argv)


def test_there_are_examples_of_every_command() -> None:
    firsts = {argv[0] for argv in example_commands()}

    assert firsts == {"serve", "apps"}
    assert len(example_commands()) >= 12
