"""deploy/compose.yaml, deploy/Dockerfile and the compose examples in docs/: the exact command
and environment each container gets, checked against the `ressonance` command line and the
settings loader, so a container that would start unclustered (or not at all) fails here.

The bug this guards against: a folded `command: >` keeps the newlines of more-indented lines,
so `sh -c "... serve\\n --backbone ..."` runs `--backbone ...` as a separate shell command
after `serve` exits, and the nodes start without a backbone.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ressonance import cli
from ressonance.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NODES = ("node-1", "node-2")
NODE_COMMAND = ["serve", "--host", "0.0.0.0", "--port", "6001"]
APP = {"RESSONANCE_APP_ID": "100001", "RESSONANCE_APP_KEY": "k", "RESSONANCE_APP_SECRET": "s"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def command_problems(name: str, service: dict[str, Any]) -> list[str]:
    """What is wrong with a service's `command` (or `entrypoint`) as a container gets it."""
    problems = []
    for key in ("command", "entrypoint"):
        value = service.get(key)
        if isinstance(value, str) and "\n" in value.strip():
            problems.append(
                f"{name}.{key} is a string of several lines: everything after the first "
                f"newline runs as another shell command ({value!r})"
            )
        elif isinstance(value, list) and not all(isinstance(part, str) for part in value):
            problems.append(f"{name}.{key} has a part that is not a string: {value!r}")
    return problems


def substituted(environment: dict[str, str]) -> dict[str, str]:
    """The environment a container gets once compose has filled in `${VAR:?...}`."""

    def fill(value: str) -> str:
        return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: APP.get(m.group(1), "?"), value)

    return {name: fill(str(value)) for name, value in environment.items()}


def test_the_nodes_get_this_command_and_environment_exactly() -> None:
    services = compose()["services"]

    assert set(services) == {"redis", "node-1", "node-2", "lb"}
    for name in NODES:
        node = services[name]
        assert node["command"] == NODE_COMMAND
        assert node["environment"] == {
            "RESSONANCE_CONFIG": "/etc/ressonance/ressonance.toml",
            "RESSONANCE_BACKBONE": "redis://redis:6379/0",
            "RESSONANCE_APP_ID": "${RESSONANCE_APP_ID:?set RESSONANCE_APP_ID (digits)}",
            "RESSONANCE_APP_KEY": "${RESSONANCE_APP_KEY:?set RESSONANCE_APP_KEY}",
            "RESSONANCE_APP_SECRET": "${RESSONANCE_APP_SECRET:?set RESSONANCE_APP_SECRET}",
        }
        assert node["volumes"] == ["./ressonance.toml:/etc/ressonance/ressonance.toml:ro"]
        assert node["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert node["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["redis"]["command"] == ["valkey-server", "--save", "", "--appendonly", "no"]


def test_no_service_runs_a_folded_multi_line_command() -> None:
    services = compose()["services"]

    assert [p for name, s in services.items() for p in command_problems(name, s)] == []


def test_the_check_catches_the_folded_command_of_the_old_scaling_page() -> None:
    old = yaml.safe_load(
        "node:\n"
        "  command: >\n"
        "    sh -c \"pip install '.[redis]' &&\n"
        "           ressonance serve --host 0.0.0.0\n"
        '                            --backbone redis://redis:6379/0"\n'
    )

    [problem] = command_problems("node", old["node"])

    assert problem.startswith("node.command is a string of several lines")


def test_each_node_would_start_clustered_over_redis_with_the_proxy_trusted() -> None:
    services = compose()["services"]
    lb_address = services["lb"]["networks"]["ressonance"]["ipv4_address"]
    for name in NODES:
        node = services[name]
        environment = substituted(node["environment"])
        args = cli.build_parser().parse_args(node["command"])
        config = DEPLOY / "ressonance.toml"  # what the volume mounts at RESSONANCE_CONFIG

        settings = load_settings(
            config_file=str(config),
            host=args.host,
            port=args.port,
            environ={**environment, "RESSONANCE_CONFIG": str(config)},
        )

        assert (settings.host, settings.port) == ("0.0.0.0", 6001)
        assert settings.backbone == "redis://redis:6379/0"
        assert settings.state_url == "redis://redis:6379/0"  # shared state: the same Redis
        assert settings.trusted_proxies == (lb_address,)
        assert [app.key for app in settings.apps] == ["k"]
        assert _seconds(node["stop_grace_period"]) > settings.drain_seconds


def test_the_load_balancer_sends_x_forwarded_for_to_both_nodes() -> None:
    services = compose()["services"]
    nginx = (DEPLOY / "nginx.conf").read_text()

    upstream = re.search(r"upstream ressonance \{(.*?)\}", nginx, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+);", upstream.group(1)) == [f"{n}:6001" for n in NODES]
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert services["lb"]["volumes"] == ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
    subnet = compose()["networks"]["ressonance"]["ipam"]["config"][0]["subnet"]
    assert subnet == "172.28.0.0/24"
    trusted = tomllib.loads((DEPLOY / "ressonance.toml").read_text())["server"]["trusted_proxies"]
    assert trusted == [services["lb"]["networks"]["ressonance"]["ipv4_address"]]


def test_the_image_runs_the_nodes_command_as_a_non_root_user_with_a_health_check() -> None:
    lines = _instructions((DEPLOY / "Dockerfile").read_text())
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM "))]

    assert final == "FROM ${BASE}"
    assert "USER 10001:10001" in lines
    assert 'ENTRYPOINT ["ressonance"]' in lines
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "6001"]' in lines
    assert "STOPSIGNAL SIGTERM" in lines
    assert (
        "ENV PATH=/opt/ressonance/bin:$PATH XDG_STATE_HOME=/var/lib/ressonance PYTHONUNBUFFERED=1"
        in lines
    )
    [health] = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert "http://127.0.0.1:6001/healthz" in health


@pytest.mark.parametrize(
    "page", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
)
def test_compose_examples_in_the_docs_run_one_command_per_container(page: str) -> None:
    text = (ROOT / page).read_text()
    problems = []
    for block in re.findall(r"```ya?ml\n(.*?)```", text, re.S):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and isinstance(document.get("services"), dict):
            for name, service in document["services"].items():
                problems += command_problems(name, service or {})
    assert problems == []


def _instructions(dockerfile: str) -> list[str]:
    """Instructions with continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    return [
        re.sub(r"\s+", " ", line.strip())
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match is not None, duration
    return float(match.group(1))
