#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (driven by Playwright, no browser download), and a
# Japanese font so the screenshots the tests write into docs/ show text rather than empty boxes.
# Prints the browser's path; exits non-zero when it cannot be installed (not root, no apt).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/opentype/ipafont-gothic ] || [ -e /usr/share/fonts/truetype/fonts-japanese-gothic.ttf ] \
  || missing+=(fonts-ipafont-gothic)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != "0" ]; then
    command -v chromium >/dev/null 2>&1 || { echo "chromium missing and not root" >&2; exit 1; }
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
command -v chromium
