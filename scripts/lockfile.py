"""requirements.lock against pyproject.toml: the check `make test` runs, and the constraints
`make lock` / `make upgrade` / `make test-lowest` install with.

    python scripts/lockfile.py check        # exit 1, naming each problem, if the lock is stale
    python scripts/lockfile.py keep [NAME]  # the lock without NAME(s), nor pins pyproject refuses
    python scripts/lockfile.py lowest       # every direct dependency pinned at its lower bound

`check` reads no network: pyproject.toml, the lock, and the metadata of the packages installed
in this interpreter (for the dependencies of dependencies). Every dependency of the project and
of every extra, and every dependency of those (their markers evaluated here), must be pinned in
the lock at a version its requirement accepts, and installed at that version.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
FIX = "run `make lock` to refresh requirements.lock (or `make upgrade` for the newest releases)"

Installed = Callable[[str], "metadata.Distribution | None"]


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
    """`name==version` lines by canonical name; comments and blank lines skipped."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, equals, version = line.partition("==")
        if not equals:
            raise ValueError(f"requirements.lock: {line!r} is not NAME==VERSION")
        pins[canonical(name)] = version.strip()
    return pins


def project_requirements(pyproject: dict[str, object]) -> list[tuple[Requirement, str]]:
    """Every requirement of the project and of each extra, with the extra that asks for it."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    found = [(Requirement(text), "") for text in project.get("dependencies", [])]
    for extra, texts in project.get("optional-dependencies", {}).items():
        found += [(Requirement(text), extra) for text in texts]
    return found


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    environment = dict(default_environment())
    return any(
        requirement.marker.evaluate({**environment, "extra": extra}) for extra in (*extras, "")
    )


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def problems(
    pyproject: dict[str, object], pins: dict[str, str], installed: Installed = _installed
) -> list[str]:
    """What is wrong with the lock, one sentence each; [] when it matches."""
    found: list[str] = []
    # Markers are evaluated as a requirement is queued: a dependency's own marker may name the
    # extra it was asked with (`extra == "hiredis"`).
    queue = [
        (req, "pyproject.toml" + (f" [{extra}]" if extra else ""))
        for req, extra in project_requirements(pyproject)
        if _applies(req, [])
    ]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, wanted_by = queue.pop(0)
        name = canonical(requirement.name)
        pinned = pins.get(name)
        if pinned is None:
            found.append(f"{requirement.name} (required by {wanted_by}) is not in the lock")
            continue
        if not SpecifierSet(str(requirement.specifier)).contains(pinned, prereleases=True):
            found.append(
                f"{requirement.name}=={pinned} in the lock does not satisfy "
                f"{requirement} (required by {wanted_by})"
            )
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        queue += _dependencies(requirement, pinned, installed, found)
    return found


def _dependencies(
    requirement: Requirement, pinned: str, installed: Installed, found: list[str]
) -> list[tuple[Requirement, str]]:
    distribution = installed(requirement.name)
    if distribution is None:
        found.append(f"{requirement.name} is locked but not installed: reinstall (make clean test)")
        return []
    if distribution.version != pinned:
        found.append(
            f"{requirement.name} {distribution.version} is installed but the lock says {pinned}: "
            "reinstall (make clean test)"
        )
    needed = []
    for text in distribution.requires or []:
        dependency = Requirement(text)
        if _applies(dependency, requirement.extras):
            needed.append((dependency, f"{requirement.name} {distribution.version}"))
    return needed


def kept_pins(pyproject: dict[str, object], pins: dict[str, str], drop: set[str]) -> list[str]:
    """Constraint lines for `make lock`: the lock less `drop` and less the pins that the
    project's own ranges now refuse (so those are resolved again)."""
    refused = {
        canonical(req.name)
        for req, _ in project_requirements(pyproject)
        if canonical(req.name) in pins
        and not req.specifier.contains(pins[canonical(req.name)], prereleases=True)
    }
    gone = {canonical(name) for name in drop} | refused
    return [f"{name}=={version}" for name, version in pins.items() if name not in gone]


def lowest_pins(pyproject: dict[str, object]) -> list[str]:
    """Each direct dependency at the lowest version its range admits (its `>=` bound)."""
    lines = set()
    for requirement, _ in project_requirements(pyproject):
        for specifier in requirement.specifier:
            if specifier.operator == ">=":
                lines.add(f"{canonical(requirement.name)}=={specifier.version}")
    return sorted(lines)


def main(argv: list[str]) -> int:
    pyproject = tomllib.loads(PYPROJECT.read_text())
    command = argv[0] if argv else "check"
    if command == "lowest":
        print("\n".join(lowest_pins(pyproject)))
        return 0
    pins = read_lock(LOCK.read_text())
    if command == "keep":
        print("\n".join(kept_pins(pyproject, pins, set(argv[1:]))))
        return 0
    found = problems(pyproject, pins)
    for problem in found:
        print(f"requirements.lock: {problem}", file=sys.stderr)
    if found:
        print(f"requirements.lock does not match pyproject.toml: {FIX}", file=sys.stderr)
        return 1
    print(f"requirements.lock: {len(pins)} pins match pyproject.toml and this environment")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
