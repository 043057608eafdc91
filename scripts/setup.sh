#!/usr/bin/env bash
# Make sure uv is there and the project's Python dependencies are installed (idempotent, fast
# when nothing changed). Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
    export PATH="$HOME/.local/bin:$PATH"
fi
if ! command -v uv >/dev/null 2>&1; then
    echo "setup: installing uv from PyPI" >&2
    python3 -m pip install --quiet --user "uv==0.13.8" 2>/dev/null \
        || python3 -m pip install --quiet "uv==0.13.8"
    hash -r
fi
uv sync --frozen --quiet
