#!/usr/bin/env bash
# `make test` (= `.ci/run`): fmt, clippy, every test and the heavy fault test,
# then where the time went. `make demo` runs `ci.sh demo`: the same bootstrap
# beside the build, then the demo.
#
# Three things make it shorter than running those one after another:
# - the bootstrap (pip, apt and npm, which wait on downloads) runs beside the
#   build, which keeps both cores busy;
# - clippy's lints run inside the one build: clippy-driver is the workspace's
#   compiler wrapper, as `cargo clippy` makes it, but for a full build of every
#   target rather than a check build. The dependencies then compile once, not a
#   second time in check mode (about 4.5 min on 2 cores), and the tests run the
#   binaries it built. The targets are clippy's `--all-targets`, so no lint is
#   dropped; a lint error fails the build step;
# - the tests run four at a time across all test binaries (cargo-nextest).
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO="${CARGO:-cargo}"
mode="${1:-test}"

timings=()
phase_start=0
start() { phase_start=$SECONDS; printf '\n== %s: %s\n' "$mode" "$1" >&2; }
record() { timings+=("$(printf '%-44s %4d s' "$1" "$2")"); }
done_() { record "$1" $((SECONDS - phase_start)); }
report() {
  printf '\n== %s: where the time went (%d s in all)\n' "$mode" "$SECONDS" >&2
  printf '   %s\n' "${timings[@]}" >&2
}

# Runs the bootstrap in the background while "$@" builds, then reports both.
build_beside_bootstrap() {
  local label="$1"; shift
  local log; log="$(mktemp)"
  (s=$SECONDS; rc=0; infra/local/bootstrap.sh || rc=$?; echo "$((SECONDS - s))" >"$log.secs"; exit "$rc") >"$log" 2>&1 &
  local boot=$!
  start "bootstrap (beside the build) and $label"
  local build_rc=0
  "$@" || build_rc=$?
  done_ "$label"
  local boot_rc=0
  wait "$boot" || boot_rc=$?
  cat "$log" >&2
  record "bootstrap (beside the build)" "$(cat "$log.secs" 2>/dev/null || echo 0)"
  rm -f "$log" "$log.secs"
  [ "$build_rc" -eq 0 ] || { echo "$mode: the build failed (above)" >&2; exit "$build_rc"; }
  [ "$boot_rc" -eq 0 ] || { echo "$mode: the bootstrap failed (above)" >&2; exit 1; }
}

case "$mode" in
  demo)
    build_beside_bootstrap "cargo test --workspace --no-run" "$CARGO" test --workspace --no-run --quiet
    exec "${CARGO_TARGET_DIR:-target}/debug/demo"
    ;;
  test) ;;
  *) echo "usage: $0 [test | demo]" >&2; exit 2 ;;
esac

trap report EXIT
CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$CLIPPY_DRIVER" ] || { echo "test: no clippy-driver at $CLIPPY_DRIVER (rustup component add clippy)" >&2; exit 1; }
# What `cargo clippy -- -D warnings` sets. Exported, so that the test
# harness's own `cargo test --no-run` (tests/src/lambda_watch.rs) finds the
# same artifacts instead of rebuilding the workspace's crates.
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# The Makefile's own targets, so that each command is written once.
start "make fmt-check"
make --no-print-directory fmt-check
done_ "fmt"

build_beside_bootstrap "build + clippy -D warnings (--all-targets)" "$CARGO" build --workspace --all-targets

# Every test, several at once: cargo test runs the test binaries one after
# another (293 s on a fresh machine), while nextest runs tests of all of them
# together (140 s, 364 of 364 passing). Four at a time, on 2 cores, because
# most of them wait on the processes they start (moto, Alertmanager, the
# agent). Doc tests are cargo test's alone.
if "$CARGO" nextest --version >/dev/null 2>&1; then
  start "cargo nextest run --workspace (4 tests at a time) and the doc tests"
  "$CARGO" nextest run --workspace --no-fail-fast --test-threads 4
  "$CARGO" test --workspace --doc --quiet
else
  start "cargo test --workspace (no cargo-nextest here: one test binary at a time)"
  "$CARGO" test --workspace --no-fail-fast
fi
done_ "tests"

start "the heavy fault test (make test-faults)"
make --no-print-directory test-faults
done_ "fault test"
