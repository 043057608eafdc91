#!/usr/bin/env bash
# The README's run command: start the KANE worker with whatever is configured (environment or
# .env) and embedded defaults for the rest: an embedded PostgreSQL when DATABASE_URL is unset,
# offline engines for every stage whose key is missing, and, when LIVEKIT_URL is unset,
# development mode: the browser playground and a local LiveKit server on loopback (when one
# can be had; the playground needs none).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"

scripts/setup.sh

livekit_started=""
if [[ -z "${LIVEKIT_URL:-}" ]] && ! grep -qs '^LIVEKIT_URL=.' .env; then
    export KANE_ENV="${KANE_ENV:-development}"
    if exports="$(scripts/livekit_server.sh start)"; then
        eval "$exports"
        livekit_started=1
        echo "run: local LiveKit server at $LIVEKIT_URL (development mode)" >&2
    else
        echo "run: no local LiveKit server (see above); the playground works without one" >&2
    fi
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
