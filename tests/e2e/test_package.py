"""The package as someone outside this checkout gets it: `python -m build` makes a wheel and an
sdist that `twine check --strict` accepts; the wheel, installed with the Redis, NATS and
PostgreSQL extras into a fresh virtual environment in a temporary directory (at the versions
of requirements.lock, from the package index), runs `ressonance serve` clustered over Redis
and serves pusher-js.

The fresh venv shares nothing with the test environment (no --system-site-packages, no
PYTHONPATH), so a module missing from the wheel or a dependency missing from its metadata
fails here, as it would for a user. Building is `--no-isolation` with the locked hatchling, so
only the install reaches the index (pip's cache makes repeated runs quick).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ressonance import __version__
from tests.e2e.conftest import REPO, RunningServer, start_server, stop_server
from tests.e2e.node_clients import run_scenario

pytestmark = pytest.mark.e2e
EXTRAS = "redis,nats,postgres"


def run(*argv: str | Path, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/ with the wheel and the sdist of this checkout, checked by twine."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO, cwd=REPO)
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        f"ressonance-{__version__}-py3-none-any.whl",
        f"ressonance-{__version__}.tar.gz",
    ]
    run(sys.executable, "-m", "twine", "check", "--strict", *sorted(out.iterdir()), cwd=out)
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel and its extras installed."""
    home = tmp_path_factory.mktemp("outside")
    run(sys.executable, "-m", "venv", home / "venv", cwd=home)
    pip = [home / "venv" / "bin" / "python", "-m", "pip"]
    lock = REPO / "requirements.lock"
    wheel = next(dist.glob("*.whl"))
    run(*pip, "install", "--quiet", "-c", lock, "pip", cwd=home)
    run(
        *pip, "install", "--quiet", "-c", lock, f"ressonance[{EXTRAS}] @ {wheel.as_uri()}", cwd=home
    )
    run(*pip, "check", cwd=home)
    return home / "venv"


def test_the_sdist_holds_the_sources_and_the_docs(dist: Path) -> None:
    listing = run("tar", "-tzf", next(dist.glob("*.tar.gz")), cwd=dist).splitlines()
    top = f"ressonance-{__version__}"

    for path in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "src/ressonance/py.typed",
        "src/ressonance/cli/serve.py",
        "docs/index.md",
    ):
        assert f"{top}/{path}" in listing, path


def test_the_installed_package_is_the_wheel_with_every_extra(venv: Path) -> None:
    shown = run(
        venv / "bin" / "python",
        "-c",
        "import ressonance, redis, hiredis, nats, asyncpg, aiosqlite, uvloop, orjson; "
        "print(ressonance.__file__, ressonance.__version__)",
        cwd=venv.parent,
    )
    path, version = shown.split()

    assert Path(path).is_relative_to(venv)  # not this checkout
    assert version == __version__
    assert run(venv / "bin" / "ressonance", "--version", cwd=venv.parent) == (
        f"ressonance {__version__}\n"
    )


@pytest.fixture
def installed_server(venv: Path, redis_url: str) -> Iterator[RunningServer]:
    """The installed `ressonance serve`, in a directory outside the checkout, on Redis."""
    server = start_server(
        venv.parent,
        extra_env={"XDG_STATE_HOME": str(venv.parent / "state")},
        args=["--backbone", redis_url],
        launcher=[str(venv / "bin" / "ressonance")],
        cwd=venv.parent,
    )
    yield server
    stop_server(server)


def test_the_installed_server_serves_pusher_js_over_redis(
    installed_server: RunningServer,
) -> None:
    with run_scenario(installed_server, "pusherjs_public.mjs") as observed:
        assert observed["events"]["first"]
    assert "event=backbone_connected backend=redis" in installed_server.log()
