"""Run the real-client scenarios in tests/e2e/js/ (pusher-js, Laravel Echo, Chromium).

Each scenario is one Node script that talks to the server under test, prints one JSON
object on stdout and stops by itself (internal timeout). `run_scenario` runs it and yields
what the clients observed; any failure, including a failed assertion in the `with` block,
is reported with the script's output and the server log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningServer

JS_DIR = Path(__file__).resolve().parent / "js"
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
# Scripts bound themselves (20 s, the browser 40 s); this only catches a wedged Node.
PROCESS_TIMEOUT = 90
INSTALL_HINT = "run `make e2e-deps` (or `npm ci --prefix tests/e2e/js`)"


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (>= 20.19) is required for the real-client e2e tests", pytrace=False)
    return node


def _require_node_modules() -> None:
    manifest = json.loads((JS_DIR / "package.json").read_text())
    missing = [
        name
        for name in manifest["dependencies"]
        if not (JS_DIR / "node_modules" / name / "package.json").is_file()
    ]
    if missing:
        pytest.fail(
            f"tests/e2e/js/node_modules is missing {', '.join(missing)}: {INSTALL_HINT}",
            pytrace=False,
        )
    stale = []
    for name, wanted in manifest["dependencies"].items():
        installed = json.loads((JS_DIR / "node_modules" / name / "package.json").read_text())
        if installed["version"] != wanted:
            stale.append(f"{name} {installed['version']} (want {wanted})")
    if stale:
        pytest.fail(
            f"stale tests/e2e/js/node_modules: {', '.join(stale)}: {INSTALL_HINT}", pytrace=False
        )


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`"
            " (or `make e2e-deps`)",
            pytrace=False,
        )


def _text(stream: str | bytes | None) -> str:
    if isinstance(stream, bytes):
        return stream.decode(errors="replace")
    return stream or ""


def _report(server: RunningServer, script: str, output: str, stderr: str) -> str:
    try:
        pretty = json.dumps(json.loads(output), indent=1, ensure_ascii=False)
    except ValueError:
        pretty = output
    return (
        f"\n--- {script} stdout ---\n{pretty}"
        f"\n--- {script} stderr ---\n{stderr[-6000:]}"
        f"\n--- server log ---\n{server.log()[-15000:]}"
    )


@contextmanager
def run_scenario(
    server: RunningServer, script: str, extra_env: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Run tests/e2e/js/`script` against `server`; yield the `observed` dict it printed.

    Against an https:// server the script is told so (E2E_TLS=1); `extra_env` must then make
    Node trust the certificate (NODE_EXTRA_CA_CERTS).
    """
    node = _require_node()
    _require_node_modules()
    env = {
        **os.environ,
        "E2E_HOST": server.host,
        "E2E_PORT": str(server.port),
        "E2E_APP_ID": server.app_id,
        "E2E_KEY": server.key,
        "E2E_SECRET": server.secret,
        **({"E2E_TLS": "1"} if server.scheme == "https" else {}),
        **(extra_env or {}),
    }
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [node, script],
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out, err = _text(exc.stdout), _text(exc.stderr)
        pytest.fail(f"{script} hung for {PROCESS_TIMEOUT} s{_report(server, script, out, err)}")
    elapsed = time.monotonic() - started
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = None
    if proc.returncode != 0 or not isinstance(result, dict) or result.get("ok") is not True:
        reason = result.get("error") if isinstance(result, dict) else "no JSON result"
        pytest.fail(
            f"{script} failed (exit {proc.returncode}, {elapsed:.1f} s): {reason}"
            f"{_report(server, script, proc.stdout, proc.stderr)}"
        )
    try:
        yield result["observed"]
    except AssertionError as exc:
        # Keep the original traceback (the failing assert line), add the evidence.
        exc.args = (f"{exc}{_report(server, script, proc.stdout, proc.stderr)}",)
        raise


def events(records: list[dict[str, Any]], name: str) -> list[Any]:
    """The data of every recorded {event, data} named `name`, in arrival order."""
    return [record["data"] for record in records if record["event"] == name]


def names(records: list[dict[str, Any]]) -> list[str]:
    """Recorded event names, without pusher-js's own pusher:* events."""
    return [r["event"] for r in records if not r["event"].startswith("pusher:")]
