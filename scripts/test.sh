#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
#
#   scripts/test.sh            default build, every test except label "long"
#   scripts/test.sh --asan     the same under AddressSanitizer + UBSan (build-asan/)
#   scripts/test.sh --tsan     the same under ThreadSanitizer (build-tsan/)
#   scripts/test.sh --long     only the long runs (kill -9 torture, long fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=default
[ $# -gt 0 ] && mode=${1#--}
case "$mode" in
  default) dir=build; flags=(); labels=(-LE long) ;;
  asan) dir=build-asan; flags=(-DBLACKBOX_ASAN=ON -DBLACKBOX_BUILD_BENCH=OFF); labels=(-LE "long|nosan") ;;
  tsan) dir=build-tsan; flags=(-DBLACKBOX_TSAN=ON -DBLACKBOX_BUILD_BENCH=OFF); labels=(-LE "long|nosan") ;;
  long) dir=build; flags=(); labels=(-L long) ;;
  *) echo "usage: $0 [--asan|--tsan|--long]" >&2; exit 2 ;;
esac

bash scripts/deps.sh
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" "${labels[@]}" --output-on-failure -j2 --timeout 300
