#!/usr/bin/env bash
# Install Debian's Chromium for the staff-console browser test (driven by Playwright, no browser download).
# Prints the browser's path; exits non-zero when it cannot be installed (not root, no apt).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  [ "$(id -u)" = "0" ] || { echo "chromium missing and not root" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
command -v chromium
