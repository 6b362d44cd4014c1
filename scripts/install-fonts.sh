#!/usr/bin/env bash
# Install a Japanese font from Debian's packages (fonts-ipafont-gothic) for the LINE rich-menu image
# (`madoguchi channels line-richmenu`). Prints the font's path; exits non-zero when it cannot be installed.
set -euo pipefail
FONT=/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf
if [ ! -f "$FONT" ]; then
  [ "$(id -u)" = "0" ] || { echo "fonts-ipafont-gothic missing and not root" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq fonts-ipafont-gothic >/dev/null
fi
echo "$FONT"
