#!/usr/bin/env bash
# The README's run command: start the KANE worker with whatever is configured (environment or
# .env) and embedded defaults for the rest: an embedded PostgreSQL when DATABASE_URL is unset,
# and a local LiveKit server on loopback (development mode) when LIVEKIT_URL is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"

scripts/setup.sh

livekit_started=""
if [[ -z "${LIVEKIT_URL:-}" ]] && ! grep -qs '^LIVEKIT_URL=.' .env; then
    eval "$(scripts/livekit_server.sh start)"
    livekit_started=1
    export KANE_ENV="${KANE_ENV:-development}"
    echo "run: local LiveKit server at $LIVEKIT_URL (development mode)" >&2
fi

worker=""
stop() {
    if [[ -n "$worker" ]]; then kill -TERM "$worker" 2>/dev/null || true; wait "$worker" || true; fi
    if [[ -n "$livekit_started" ]]; then scripts/livekit_server.sh stop || true; fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

uv run --frozen python -m api &
worker=$!
wait "$worker"
