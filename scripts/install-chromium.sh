#!/usr/bin/env bash
# Installs Debian's chromium for the browser end-to-end test (needs root or sudo).
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
