#!/usr/bin/env bash
# Run a LiveKit server on loopback for development and end-to-end tests.
#
# Usage: scripts/livekit_server.sh {start|stop|run|status|install}
#
#   start    start in the background, wait until it answers, print export lines:
#              export LIVEKIT_URL=ws://127.0.0.1:7880
#              export LIVEKIT_API_KEY=devkey
#              export LIVEKIT_API_SECRET=...
#   stop     stop the server started by `start` (same LIVEKIT_PORT / LIVEKIT_RUN_DIR)
#   run      run in the foreground (logs to the terminal)
#   status   exit 0 when the server of this port answers
#   install  only make sure the binary exists; print its path
#
# Environment:
#   LIVEKIT_PORT          signalling/HTTP port (default 7880)
#   LIVEKIT_RTC_TCP_PORT  ICE/TCP port (default LIVEKIT_PORT+1)
#   LIVEKIT_RTC_UDP_PORT  ICE/UDP mux port (default LIVEKIT_PORT+2)
#   LIVEKIT_API_KEY       API key (default devkey)
#   LIVEKIT_API_SECRET    API secret (default: generated once, kept in the run dir, mode 600)
#   LIVEKIT_RUN_DIR       config, pid, log and secret files (default $KANE_CACHE_DIR/livekit/$PORT)
#   LIVEKIT_START_TIMEOUT seconds `start` waits for the server (default 30)
#   KANE_CACHE_DIR        cache root (default ~/.cache/kane); the binary lives in its bin/
#
# The binary is livekit-server from PATH, else $KANE_CACHE_DIR/bin/livekit-server, else it is
# built with `go install` from the Go module proxy (a few minutes on a fresh machine; reruns
# are fast thanks to Go's default module and build caches).
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 livekit-server not found and cannot be installed.
set -euo pipefail

readonly LIVEKIT_VERSION="v1.13.5"
readonly LIVEKIT_MODULE="github.com/livekit/livekit-server/cmd/server"

CACHE_DIR="${KANE_CACHE_DIR:-$HOME/.cache/kane}"
BIN_DIR="$CACHE_DIR/bin"
PORT="${LIVEKIT_PORT:-7880}"
RTC_TCP_PORT="${LIVEKIT_RTC_TCP_PORT:-$((PORT + 1))}"
RTC_UDP_PORT="${LIVEKIT_RTC_UDP_PORT:-$((PORT + 2))}"
API_KEY="${LIVEKIT_API_KEY:-devkey}"
RUN_DIR="${LIVEKIT_RUN_DIR:-$CACHE_DIR/livekit/$PORT}"
START_TIMEOUT="${LIVEKIT_START_TIMEOUT:-30}"
CONFIG_FILE="$RUN_DIR/livekit.yaml"
PID_FILE="$RUN_DIR/livekit.pid"
LOG_FILE="$RUN_DIR/livekit.log"
SECRET_FILE="$RUN_DIR/api_secret"

log() { echo "livekit_server: $*" >&2; }

# Print the path of a livekit-server binary, installing it when needed.
find_or_install() {
    local found
    if found="$(command -v livekit-server 2>/dev/null)"; then
        echo "$found"
        return 0
    fi
    if [[ -x "$BIN_DIR/livekit-server" ]]; then
        echo "$BIN_DIR/livekit-server"
        return 0
    fi
    if [[ ! -x "$BIN_DIR/server" ]]; then
        if ! command -v go >/dev/null 2>&1; then
            log "livekit-server is not on PATH and Go is not installed to build it"
            return 3
        fi
        mkdir -p "$BIN_DIR"
        log "building livekit-server $LIVEKIT_VERSION with go install into $BIN_DIR (slow once)"
        local started=$SECONDS
        if ! GOBIN="$BIN_DIR" GOFLAGS="-mod=mod ${GOFLAGS:-}" \
            go install "$LIVEKIT_MODULE@$LIVEKIT_VERSION" >&2; then
            log "go install of livekit-server failed"
            return 3
        fi
        log "go install took $((SECONDS - started)) s"
    fi
    # `go install` names the binary after its package folder (cmd/server).
    ln -sf server "$BIN_DIR/livekit-server"
    echo "$BIN_DIR/livekit-server"
}

ensure_secret() {
    mkdir -p "$RUN_DIR"
    if [[ -n "${LIVEKIT_API_SECRET:-}" ]]; then
        API_SECRET="$LIVEKIT_API_SECRET"
    elif [[ -s "$SECRET_FILE" ]]; then
        API_SECRET="$(cat "$SECRET_FILE")"
    else
        # 48 hex chars: livekit-server wants secrets of at least 32 characters.
        API_SECRET="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
        (umask 077 && printf '%s' "$API_SECRET" >"$SECRET_FILE")
    fi
    if ((${#API_SECRET} < 32)); then
        log "LIVEKIT_API_SECRET must be at least 32 characters"
        exit 1
    fi
}

# Option names checked against livekit-server v1.13.5 (pkg/config/config.go) and
# mediatransportutil pkg/rtcconfig/config.go.
write_config() {
    ensure_secret
    (
        umask 077
        cat >"$CONFIG_FILE" <<EOF
port: $PORT
bind_addresses:
  - 127.0.0.1
rtc:
  tcp_port: $RTC_TCP_PORT
  udp_port: $RTC_UDP_PORT
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes:
      - lo
keys:
  $API_KEY: $API_SECRET
logging:
  level: info
room:
  auto_create: true
  empty_timeout: 60
EOF
    )
}

answers() {
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" 2>/dev/null
}

running_pid() {
    [[ -s "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

print_exports() {
    echo "export LIVEKIT_URL=ws://127.0.0.1:$PORT"
    echo "export LIVEKIT_API_KEY=$API_KEY"
    echo "export LIVEKIT_API_SECRET=$API_SECRET"
}

cmd_start() {
    local bin pid
    bin="$(find_or_install)" || exit $?
    if pid="$(running_pid)"; then
        ensure_secret
        log "already running (pid $pid) on port $PORT"
        print_exports
        return 0
    fi
    if answers; then
        log "something else already answers on port $PORT"
        exit 1
    fi
    write_config
    : >"$LOG_FILE"
    nohup "$bin" --dev --config "$CONFIG_FILE" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "livekit-server exited during start; last log lines:"
            tail -n 20 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "livekit-server did not answer within ${START_TIMEOUT}s (log: $LOG_FILE)"
            kill "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.1
    done
    log "started pid $pid on 127.0.0.1:$PORT (log: $LOG_FILE)"
    print_exports
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running on port $PORT"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop after 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped pid $pid"
}

cmd_run() {
    local bin
    bin="$(find_or_install)" || exit $?
    write_config
    print_exports >&2
    exec "$bin" --dev --config "$CONFIG_FILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    run) cmd_run ;;
    status) answers ;;
    install) find_or_install ;;
    *)
        echo "usage: $0 {start|stop|run|status|install}" >&2
        exit 2
        ;;
esac
