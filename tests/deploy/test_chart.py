"""deploy/helm/ressonance, rendered by the real `helm template` (scripts/install-helm.sh puts
helm in .tools/): what each container runs, its environment, probes, drain and budget, checked
against the `ressonance` command line and the settings loader."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ressonance import cli
from ressonance.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ressonance"
APP_VALUES = ["--set", "app.id=100001,app.key=chart-key,app.secret=chart-secret"]


@pytest.fixture(scope="module")
def helm() -> str:
    found = os.environ.get("HELM") or shutil.which("helm")
    local = ROOT / ".tools" / "helm"
    if found is None and local.is_file():
        found = str(local)
    if found is None:
        pytest.fail(
            "helm is missing: run scripts/install-helm.sh (make deploy-deps)", pytrace=False
        )
    return found


def render(helm: str, *args: str) -> dict[str, dict[str, Any]]:
    """The chart's objects by kind."""
    done = subprocess.run(
        [helm, "template", "rel", str(CHART), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {doc["kind"]: doc for doc in yaml.safe_load_all(done.stdout) if doc}


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [only] = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def test_the_chart_lints(helm: str) -> None:
    done = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *APP_VALUES],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_node_gets_this_command_and_environment(helm: str) -> None:
    objects = render(helm, *APP_VALUES)
    node = container(objects)

    assert set(objects) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    assert "command" not in node  # the image's entrypoint: ressonance
    assert node["args"] == ["serve", "--host", "0.0.0.0", "--port", "6001"]
    assert node["env"] == [
        {"name": "RESSONANCE_CONFIG", "value": "/etc/ressonance/ressonance.toml"},
        {"name": "RESSONANCE_BACKBONE", "value": "redis://redis:6379/0"},
    ]
    assert node["envFrom"] == [{"secretRef": {"name": "rel-app"}}]
    assert objects["Secret"]["stringData"] == {
        "RESSONANCE_APP_ID": "100001",
        "RESSONANCE_APP_KEY": "chart-key",
        "RESSONANCE_APP_SECRET": "chart-secret",
    }
    assert objects["Deployment"]["spec"]["replicas"] == 2


def test_a_node_would_start_clustered_with_the_rendered_config(helm: str, tmp_path: Path) -> None:
    objects = render(helm, *APP_VALUES)
    node = container(objects)
    config = tmp_path / "ressonance.toml"
    config.write_text(objects["ConfigMap"]["data"]["ressonance.toml"])
    environment = {e["name"]: e["value"] for e in node["env"]}
    args = cli.build_parser().parse_args(node["args"])

    settings = load_settings(
        host=args.host,
        port=args.port,
        environ={
            **environment,
            **objects["Secret"]["stringData"],
            "RESSONANCE_CONFIG": str(config),
        },
    )

    assert (settings.host, settings.port) == ("0.0.0.0", 6001)
    assert settings.backbone == settings.state_url == "redis://redis:6379/0"
    assert settings.trusted_proxies == ("10.0.0.0/8",)
    assert settings.drain_seconds == 10
    assert [app.key for app in settings.apps] == ["chart-key"]


def test_readiness_liveness_and_a_drain_that_is_never_cut_short(helm: str) -> None:
    objects = render(helm, *APP_VALUES)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    node = container(objects)

    assert node["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "pusher"}
    assert node["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "pusher"}
    assert node["ports"] == [{"name": "pusher", "containerPort": 6001}]
    assert node["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["terminationGracePeriodSeconds"] > 5 + 10  # preStop + drain_seconds
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert node["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in node["volumeMounts"]}
    assert mounts == {"/etc/ressonance", "/var/lib/ressonance"}  # config; a writable state dir


def test_a_disruption_budget_and_resources_from_the_capacity_figures(helm: str) -> None:
    objects = render(helm, *APP_VALUES)
    budget = objects["PodDisruptionBudget"]["spec"]
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]

    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == labels
    assert objects["Service"]["spec"]["selector"] == labels
    assert container(objects)["resources"] == {
        "requests": {"cpu": "1", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_an_existing_secret_is_used_as_it_is(helm: str) -> None:
    objects = render(helm, "--set", "app.existingSecret=shop-app,state=redis://state:6379/1")

    assert "Secret" not in objects
    assert container(objects)["envFrom"] == [{"secretRef": {"name": "shop-app"}}]
    assert container(objects)["env"][-1] == {
        "name": "RESSONANCE_STATE",
        "value": "redis://state:6379/1",
    }


def test_without_an_app_the_chart_says_what_to_set(helm: str) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render(helm)

    assert "app.id (digits) or app.existingSecret is required" in failed.value.stderr
