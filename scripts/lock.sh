#!/usr/bin/env bash
# Refresh requirements.lock from a real install of every extra into a scratch venv, then freeze it.
#   scripts/lock.sh                   `make lock`: keep every pin pyproject.toml still accepts;
#                                     resolve only what is new or no longer accepted
#   scripts/lock.sh --upgrade         `make upgrade`: the newest releases the ranges admit
#   scripts/lock.sh --upgrade NAME..  `make upgrade PACKAGES="redis hiredis"`: only those newer
# Run `make test` afterwards; commit the lock only when it passes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -m venv "$scratch/venv"
py="$scratch/venv/bin/python"
"$py" -m pip install --quiet packaging  # for scripts/lockfile.py; resolved again below
constraints=()
if [[ "${1:-}" == "--upgrade" ]]; then
  shift
  if (($#)); then
    "$py" scripts/lockfile.py keep "$@" > "$scratch/keep.txt"
    constraints=(-c "$scratch/keep.txt")
  fi
  "$py" -m pip install --quiet --upgrade pip
else
  "$py" scripts/lockfile.py keep > "$scratch/keep.txt"
  constraints=(-c "$scratch/keep.txt")
  "$py" -m pip install --quiet "${constraints[@]}" --upgrade pip
fi
"$py" -m pip install --quiet "${constraints[@]}" '.[redis,nats,sqlite,postgres,test]'
{
  echo "# Every package a test install takes, at the version CI last passed with (pip freeze)."
  echo "# Installs use it as pip constraints (-c). Refresh on purpose: make lock / make upgrade."
  "$py" -m pip freeze --all --exclude-editable \
    | grep -v -E '^(setuptools|wheel|ressonance)[= @]'
} > requirements.lock
git --no-pager diff --stat -- requirements.lock 2>/dev/null || true
echo "requirements.lock refreshed; now run: make test (it reinstalls from the new lock)"
