#!/usr/bin/env bash
# Refresh requirements.lock: install the test extras into a scratch venv without constraints
# (the newest releases the ranges in pyproject.toml admit) and freeze what was installed.
# Run `make test` afterwards; commit the lock only when it passes.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --upgrade pip
"$scratch/venv/bin/python" -m pip install --quiet '.[redis,nats,sqlite,postgres,test]'
{
  echo "# Every package a test install takes, at the version CI last passed with (pip freeze of .venv)."
  echo "# Makefile installs with -c requirements.lock; refresh on purpose: scripts/lock.sh."
  "$scratch/venv/bin/python" -m pip freeze --all --exclude-editable \
    | grep -v -E '^(setuptools|wheel|ressonance)[= @]'
} > requirements.lock
echo "requirements.lock refreshed; now run: make clean test"
