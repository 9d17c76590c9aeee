#!/usr/bin/env bash
# Bounded fuzzing run for CI: builds the cargo-fuzz targets and runs each for a fixed time
# from the committed corpus. Exits non-zero when any target finds a crash, a timeout or an
# out-of-memory input, and says how to reproduce it.
#
#   bash fuzz/run.sh                       # every target, 60 s each
#   FUZZ_SECONDS=600 bash fuzz/run.sh      # longer
#   FUZZ_TARGETS="value_parsers" bash fuzz/run.sh
#
# Environment (all optional):
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_SEED       libFuzzer -seed (default 20251125; printed, so a failing run can be re-run)
#   FUZZ_TARGETS    space-separated targets (default: all four)
#   FUZZ_SANITIZER  address (default) or none (faster, catches only panics and hangs)
#   FUZZ_TARGET_DIR cargo target directory (default fuzz/target; never the workspace's)
#
# Needs: stable Rust (cargo-fuzz's nightly flags are enabled with RUSTC_BOOTSTRAP=1), a C++
# compiler for libFuzzer (installed with apt-get when missing), and cargo-fuzz (installed
# from crates.io into ~/.cargo/bin when missing). The committed corpus is only read: new
# inputs go to a scratch directory; crashing inputs to fuzz/artifacts/<target>/.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
SEED="${FUZZ_SEED:-20251125}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGETS="${FUZZ_TARGETS:-validate_editor_json validate_canvas request_bodies value_parsers}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$FUZZ_DIR/target}"
CARGO_FUZZ_VERSION="0.13.2"

# Per target: the largest input, the per-input time limit (s), and a dictionary if any.
# The validator must stay linear up to the 5 MiB model limit; 64 KiB inputs keep the fuzzer
# fast while a super-linear rule would still blow the 10 s limit.
max_len() {
  case "$1" in
    validate_editor_json) echo 65536 ;;
    validate_canvas) echo 16384 ;;
    request_bodies) echo 16384 ;;
    value_parsers) echo 8192 ;;
    *) echo 4096 ;;
  esac
}
timeout_s() { echo 10; }
dict() {
  case "$1" in
    validate_editor_json) echo dicts/editor_json.dict ;;
    request_bodies) echo dicts/request_bodies.dict ;;
    *) echo "" ;;
  esac
}

log() { printf '[fuzz] %s\n' "$*"; }

# --- tools --------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
# The main workspace's settings must not leak in (the fuzz crate is its own workspace).
unset CARGO_TARGET_DIR RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

if ! command -v c++ >/dev/null 2>&1; then
  log "no C++ compiler (libFuzzer needs one): installing g++ with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
log "$(cargo fuzz --version); $(rustc --version); sanitizer: $SANITIZER"

# --- build --------------------------------------------------------------------------------
build_start=$(date +%s)
# Release with debug assertions (overflow checks, debug_assert!), as for every run below.
for target in $TARGETS; do
  cargo fuzz build --sanitizer "$SANITIZER" --debug-assertions --target-dir "$TARGET_DIR" "$target"
done
log "build took $(($(date +%s) - build_start)) s"

# --- run ----------------------------------------------------------------------------------
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
summary=()
log "seed $SEED, $SECONDS_PER_TARGET s per target"
for target in $TARGETS; do
  corpus="corpus/$target"
  work="$scratch/$target"
  artifacts="artifacts/$target"
  mkdir -p "$corpus" "$work" "$artifacts"
  args=(
    "-max_total_time=$SECONDS_PER_TARGET"
    "-seed=$SEED"
    "-max_len=$(max_len "$target")"
    "-timeout=$(timeout_s "$target")"
    "-rss_limit_mb=2048"
    "-print_final_stats=1"
    "-artifact_prefix=$artifacts/"
  )
  if [ -n "$(dict "$target")" ]; then
    args+=("-dict=$(dict "$target")")
  fi
  log "$target: $(find "$corpus" -type f | wc -l) seed inputs, -max_len=$(max_len "$target")"
  output="$scratch/$target.log"
  touch "$scratch/$target.start"
  status=0
  # New inputs go to the scratch directory (listed first); the committed corpus is read only.
  cargo fuzz run --sanitizer "$SANITIZER" --debug-assertions --target-dir "$TARGET_DIR" \
    "$target" "$work" "$corpus" -- "${args[@]}" >"$output" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$output" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$output" | tail -1)"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$output" | tail -1)"
  line="$target: ${execs:-?} executions (${rate:-?}/s), peak RSS ${rss:-?} MB, exit $status"
  summary+=("$line")
  log "$line"
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    log "$target FAILED; the end of libFuzzer's output:"
    tail -n 60 "$output"
    find "$artifacts" -type f -newer "$scratch/$target.start" | while read -r artifact; do
      log "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $SANITIZER -a $target fuzz/$artifact"
    done
  fi
done

log "summary (seed $SEED, $SECONDS_PER_TARGET s per target):"
for line in "${summary[@]}"; do
  printf '  %s\n' "$line"
done
if [ "${#failed[@]}" -ne 0 ]; then
  log "failing targets: ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
log "no crash in $(echo "$TARGETS" | wc -w) targets"
