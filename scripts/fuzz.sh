#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan + libFuzzer) and runs each
# one on a copy of its seed corpus (fuzz/corpus/<target>/).
#
#   scripts/fuzz.sh          30 s per target, a new random seed each run
#   scripts/fuzz.sh 600      10 minutes per target
#   BLACKBOX_FUZZ_SEED=1 scripts/fuzz.sh 30
#                            the same inputs in the same order every time (CI)
#
# Exits non-zero when any target crashes, leaks, times out, fails a check or
# gets a sanitizer report; the input that did it is kept and its path printed.
# The build directory is build-fuzz/ (BLACKBOX_FUZZ_BUILD_DIR to change it).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi
dir=${BLACKBOX_FUZZ_BUILD_DIR:-build-fuzz}
targets=(fuzz_event_decode fuzz_import fuzz_journal fuzz_ring)

bash scripts/deps.sh
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DBLACKBOX_FUZZ=ON \
  -DBLACKBOX_BUILD_TESTS=OFF -DBLACKBOX_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target fuzz_targets

work=$(mktemp -d "${TMPDIR:-/tmp}/blackbox-fuzz.XXXXXX")
failed=()
for t in "${targets[@]}"; do
  binary=$dir/bin/$t
  [ -x "$binary" ] || binary=$dir/fuzz/$t
  echo "== $t: ${seconds}s"
  max_len=4096
  [ "$t" = fuzz_ring ] && max_len=8192  # whole ring files
  FUZZ_SEED=${BLACKBOX_FUZZ_SEED:-} FUZZ_MAX_LEN=$max_len \
    fuzz/run_target.sh "$binary" "fuzz/corpus/$t" "$seconds" "$work/$t" || failed+=("$t")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs and logs under $work)" >&2
  exit 1
fi
rm -rf "$work"
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each with no finding"
