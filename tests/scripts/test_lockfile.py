"""scripts/lockfile.py: the check `make test` runs on requirements.lock, on the real files and on
small made-up ones, and the constraints `make lock` and `make test-lowest` install with."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lockfile", ROOT / "scripts" / "lockfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lockfile = load_script()


@dataclass
class Dist:
    """What the check reads of an installed distribution."""

    version: str
    requires: list[str] = field(default_factory=list)


INSTALLED = {
    "redis": Dist(
        "8.2.0", ["async-timeout>=4; python_version < '3.11'", "hiredis>=3; extra == 'hiredis'"]
    ),
    "hiredis": Dist("3.5.0"),
    "orjson": Dist("3.13.0"),
    "pytest": Dist("9.2.0", ["pluggy>=1.5"]),
    "pluggy": Dist("1.7.0"),
}
PYPROJECT = {
    "project": {
        "dependencies": ["orjson>=3.9", "uvloop>=0.19; sys_platform == 'nonexistent'"],
        "optional-dependencies": {"redis": ["redis[hiredis]>=5.0.1"], "test": ["pytest>=8"]},
    }
}
LOCK = "# comment\norjson==3.13.0\nredis==8.2.0\nhiredis==3.5.0\npytest==9.2.0\npluggy==1.7.0\n"


def check(lock: str = LOCK, pyproject: dict[str, object] = PYPROJECT) -> list[str]:
    found: list[str] = lockfile.problems(
        pyproject, lockfile.read_lock(lock), lambda name: INSTALLED.get(name)
    )
    return found


def test_a_lock_that_pins_everything_in_range_passes() -> None:
    assert check() == []


def test_a_dependency_missing_from_the_lock_is_named_with_who_needs_it() -> None:
    assert check(LOCK.replace("pluggy==1.7.0\n", "")) == [
        "pluggy (required by pytest 9.2.0) is not in the lock"
    ]
    assert check(LOCK.replace("hiredis==3.5.0\n", "")) == [
        "hiredis (required by redis 8.2.0) is not in the lock"  # through the [hiredis] extra
    ]


def test_a_pin_the_range_refuses_is_named() -> None:
    pyproject = {"project": {"dependencies": ["orjson>=3.14"]}}

    assert check(pyproject=pyproject) == [
        "orjson==3.13.0 in the lock does not satisfy orjson>=3.14 (required by pyproject.toml)"
    ]


def test_an_installed_version_other_than_the_locked_one_is_named() -> None:
    assert check(LOCK.replace("orjson==3.13.0", "orjson==3.12.0")) == [
        "orjson 3.13.0 is installed but the lock says 3.12.0: reinstall (make clean test)"
    ]


def test_a_malformed_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="is not NAME==VERSION"):
        lockfile.read_lock("orjson>=3\n")


def test_make_lock_keeps_the_pins_still_accepted() -> None:
    pins = lockfile.read_lock(LOCK)
    pyproject = {"project": {"dependencies": ["orjson>=3.14", "pytest>=8"]}}

    kept = lockfile.kept_pins(pyproject, pins, {"Redis"})

    assert kept == ["hiredis==3.5.0", "pytest==9.2.0", "pluggy==1.7.0"]


def test_the_lowest_pins_are_the_lower_bounds() -> None:
    assert lockfile.lowest_pins(PYPROJECT) == [
        "orjson==3.9",
        "pytest==8",
        "redis==5.0.1",
        "uvloop==0.19",
    ]


def test_the_command_fails_saying_to_run_make_lock(tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "lockfile.py"
    script.parent.mkdir()
    script.write_text((ROOT / "scripts" / "lockfile.py").read_text())
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["orjson>=3.9"]\n')
    (tmp_path / "requirements.lock").write_text("# nothing pinned\n")

    done = subprocess.run(
        [sys.executable, str(script), "check"], capture_output=True, text=True, check=False
    )

    assert done.returncode == 1
    assert done.stderr == (
        "requirements.lock: orjson (required by pyproject.toml) is not in the lock\n"
        "requirements.lock does not match pyproject.toml: run `make lock` to refresh "
        "requirements.lock (or `make upgrade` for the newest releases)\n"
    )
