#!/usr/bin/env bash
# API fuzzing for CI: schemathesis drives every operation of the served OpenAPI document
# against the real server and fails on a 5xx, a response that does not match the document
# (schema, status code, content type; every documented 4xx is problem+json), and says how to
# reproduce it.
#
#   bash api-fuzz/run.sh                            # 100 cases per operation and phase
#   API_FUZZ_EXAMPLES=200 bash api-fuzz/run.sh      # longer
#   API_FUZZ_SEED=1234 bash api-fuzz/run.sh         # re-run a failing seed
#
# Environment (all optional):
#   API_FUZZ_EXAMPLES  schemathesis --max-examples, per operation (default 100)
#   API_FUZZ_SEED      schemathesis --seed (default 20251125; printed)
#   API_FUZZ_CACHE     where the Python venv lives (default ~/.cache/flowable-ui/api-fuzz)
#   CARGO_TARGET_DIR   where cargo builds the server (default: the workspace's target/)
#
# What it does: installs schemathesis (versions pinned in api-fuzz/requirements.txt) from PyPI
# into a venv under the cache directory; builds `flowable-ui`; starts it on the embedded
# backend (no DATABASE_URL: an SQLite file) in a fresh temporary directory with APP_PROFILE=dev
# on a free port; signs a token with `flowable-ui token` in the same directory (so with the
# same generated dev secret); runs `schemathesis run` on /api-docs/openapi.json; stops the
# server. Needs python3 with venv/pip and cargo.
#
# Left out: GET /api/v1/events/stream. Its 200 is an endless text/event-stream, and
# schemathesis reads a response body to its end before checking it, so every successful case
# would only end at the request timeout. The contract tests cover the stream (tests/stream.rs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLES="${API_FUZZ_EXAMPLES:-100}"
SEED="${API_FUZZ_SEED:-20251125}"
CACHE="${API_FUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flowable-ui/api-fuzz}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CHECKS="not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"

log() { printf '[api-fuzz] %s\n' "$*"; }

# --- schemathesis -------------------------------------------------------------------------
venv="$CACHE/venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$ROOT/api-fuzz/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing schemathesis into $venv"
  rm -rf "$venv"
  mkdir -p "$CACHE"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/api-fuzz/requirements.txt"
  echo "$want" >"$stamp"
fi
log "$("$venv/bin/schemathesis" --version)"

# --- the server ---------------------------------------------------------------------------
log "building flowable-ui"
(cd "$ROOT" && cargo build --locked -p api --bin flowable-ui)
bin="$TARGET_DIR/debug/flowable-ui"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# Only what this run sets: no DATABASE_URL (embedded SQLite), no NATS, the dev secret.
run_env=(env -u DATABASE_URL -u NATS_URL -u JWT_SECRET -u JWT_PUBLIC_KEY_PATH -u DATA_DIR
  APP_PROFILE=dev SERVER_PORT="$port" RUST_LOG="${RUST_LOG:-warn}")
(cd "$work" && exec "${run_env[@]}" "$bin" serve >"$work/server.log" 2>&1) &
server_pid=$!
log "server pid $server_pid on $base, working directory $work"

ready=""
for _ in $(seq 1 120); do
  if python3 - "$base/actuator/health/readiness" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
PY
    ready=yes
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  log "the server did not become ready; its log:"
  cat "$work/server.log"
  exit 1
fi

token="$(cd "$work" && "${run_env[@]}" "$bin" token --sub fuzz --tenant fuzz \
  --privileges access-modeler,access-admin --ttl-hours 2)"

# --- fuzz ---------------------------------------------------------------------------------
log "seed $SEED, at most $EXAMPLES cases per operation and phase, checks $CHECKS"
status=0
# From the scratch directory: schemathesis keeps its state in ./.schemathesis.
cd "$work"
"$venv/bin/schemathesis" run "$base/api-docs/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks "$CHECKS" \
  --seed "$SEED" \
  --max-examples "$EXAMPLES" \
  --exclude-path /api/v1/events/stream \
  --generation-database none \
  --request-timeout 30 \
  --workers 2 \
  --no-color || status=$?

if grep -q "panicked" "$work/server.log"; then
  log "the server panicked:"
  grep -B2 -A10 "panicked" "$work/server.log" | head -60
  status=1
fi
if [ "$status" -ne 0 ]; then
  log "FAILED (exit $status). The server's last log lines:"
  tail -n 40 "$work/server.log"
  log "reproduce: API_FUZZ_SEED=$SEED API_FUZZ_EXAMPLES=$EXAMPLES bash api-fuzz/run.sh"
  log "(or replay one case with the curl command schemathesis printed above, after starting"
  log " 'APP_PROFILE=dev cargo run' and signing a token with 'cargo run -- token')"
  exit "$status"
fi
log "no failure (seed $SEED)"
