#!/usr/bin/env bash
# Make sure a headless-capable Chromium is there for the browser test: Debian's `chromium`
# package (installed with apt-get when missing and we are root). Prints its path.
#
# Usage: scripts/chromium.sh install
# Exit codes: 0 ok, 3 not found and cannot be installed.
set -euo pipefail

find_chromium() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null \
        || command -v google-chrome 2>/dev/null
}

if [[ "${1:-}" != "install" ]]; then
    echo "usage: $0 install" >&2
    exit 2
fi
if path="$(find_chromium)"; then
    echo "$path"
    exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium: installing Debian's chromium with apt-get (once)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
if path="$(find_chromium)"; then
    echo "$path"
    exit 0
fi
echo "chromium: not found and cannot be installed here; the browser test needs it" >&2
exit 3
