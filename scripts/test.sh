#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the tests need (uv, the Python
# dependencies, livekit-server through `go install`, Debian's chromium for the browser test),
# runs the linters, the type checker and the tests; the tests start and stop their own LiveKit
# server, embedded PostgreSQL, emulators, workers and browser. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"

scripts/setup.sh
# Outside CI a machine without Go or root may still run the rest: those tests then skip.
scripts/livekit_server.sh install >/dev/null || [[ "${CI:-}" != "true" ]]
scripts/chromium.sh install >/dev/null || [[ "${CI:-}" != "true" ]]

echo "== ruff" >&2
uv run --frozen ruff check .
uv run --frozen ruff format --check .
echo "== mypy" >&2
uv run --frozen mypy
echo "== pytest" >&2
uv run --frozen pytest "$@"
