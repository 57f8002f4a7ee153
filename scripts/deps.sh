#!/usr/bin/env bash
# Installs the Debian 12 packages blackbox needs to build, test and benchmark.
# Idempotent and quick when everything is already there. Run as root.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config git ca-certificates
  librocksdb-dev libflatbuffers-dev flatbuffers-compiler
  libfmt-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libxxhash-dev              # XXH3, the checksum of the journal's ring (journal/src/ring.cpp)
  libdw-dev                  # names crash frames from symbol and line tables
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev   # fuzzing (libFuzzer) and sanitizer runtimes
  systemd                    # systemd-notify, used as a heartbeat client in tests
  procps util-linux          # ps, kill, flock for the scripts
  binutils                   # objcopy, used by a symbolizer test
  strace                     # counts the fsyncs of a handled error in a process test
  help2man groff-base        # man pages generated from --help at build time, and checked
  python3-dev pybind11-dev   # the Python module (python/)
  python3-pytest             # its tests (tests/python/)
  libcpp-httplib-dev         # the watchdog's /metrics server
  prometheus prometheus-alertmanager  # real servers for the monitoring tests (promtool too)
  chromium python3-selenium  # the browser test of `blackbox serve` (tests/browser/)
  chromium-driver            # /usr/bin/chromedriver, which selenium drives in that test
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
