#!/usr/bin/env bash
# Runs one libFuzzer target for a while on a copy of its seed corpus.
#   fuzz/run_target.sh BINARY SEED_DIR SECONDS [WORK_DIR]
# FUZZ_SEED=N makes the run repeatable (libFuzzer's -seed); without it
# libFuzzer picks a new random seed, printed in the log ("Seed: N").
# FUZZ_MAX_LEN=N sets the longest input (4096 unless given; fuzz_ring's
# inputs, whole ring files, need 8192).
# The seeds are never written to: new inputs go to WORK_DIR/corpus, and a
# crashing input to WORK_DIR/ (crash-*, leak-*, timeout-*, oom-*). Exits
# non-zero on any crash, leak, timeout or sanitizer report.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 BINARY SEED_DIR SECONDS [WORK_DIR]" >&2
  exit 2
fi
binary=$1 seeds=$2 seconds=$3 work=${4:-}
name=$(basename "$binary")
if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/corpus"
cp -r "$seeds"/. "$work/corpus/"

# halt_on_error and abort_on_error make every sanitizer report a crash that
# libFuzzer saves; UBSan aborts on its first report too.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1:abort_on_error=1
log="$work/$name.log"
status=0
seed_arg=()
if [ -n "${FUZZ_SEED:-}" ]; then seed_arg=(-seed="$FUZZ_SEED"); fi
"$binary" "$work/corpus" "${seed_arg[@]}" -max_total_time="$seconds" -detect_leaks=1 -max_len="${FUZZ_MAX_LEN:-4096}" -timeout=60 \
  -print_final_stats=1 -artifact_prefix="$work/" >"$log" 2>&1 || status=$?

if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|check failed:" "$log"; then
  [ "$status" -ne 0 ] || status=1
fi
# Summary: the last coverage line and the final statistics.
grep -E "^INFO: Seed: " "$log" | head -1 || true
grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" "$log" | tail -1 || true
grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$log" || true
if [ "$status" -ne 0 ]; then
  echo "$name: FAILED (status $status); log: $log" >&2
  grep -E -A25 "ERROR: |runtime error:|check failed:" "$log" | head -60 >&2 || true
  ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
  trap - EXIT  # keep the work directory: it holds the input that failed
  exit 1
fi
echo "$name: ok ($seconds s, no crash, leak or sanitizer report)"
