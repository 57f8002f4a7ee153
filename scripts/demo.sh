#!/usr/bin/env bash
# The main job: build blackbox, run the demo order router under
# blackbox-watchdog, let it crash, hang and leak, then show what the journal
# recorded. About a minute; everything it writes goes to one scratch folder.
#
#   scripts/demo.sh [--python] [WORKDIR]      (default: a new folder under /tmp)
#
# --python runs examples/order_router.py (the same router on the Python
# module `blackbox`) instead of the C++ blackbox-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=0
if [ "${1:-}" = "--python" ]; then
  python=1
  shift
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/deps.sh
say "Building (cmake + ninja, build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=(blackbox blackbox-watchdog blackbox-demo)
[ "$python" = 1 ] && targets+=(blackbox_python)
cmake --build build -j"$(nproc)" --target "${targets[@]}" | tail -n 1

bin=$root/build/bin
work=${1:-$(mktemp -d /tmp/blackbox-demo.XXXXXX)}
mkdir -p "$work"
cd "$work"
export BLACKBOX_JOURNAL=$work/journal
export PATH=$bin:$PATH

demo=(blackbox-demo --tour --interval-ms 100)
if [ "$python" = 1 ]; then
  export PYTHONPATH=$root/build/python
  py=/usr/bin/python3
  [ -x "$py" ] || py=$(command -v python3)
  demo=("$py" "$root/examples/order_router.py" --tour --interval-ms 100)
fi

say "Starting ${demo[*]:0:2} (a fake order router) under blackbox-watchdog"
cat <<TXT
The demo misbehaves differently after each restart: handled errors and a
segfault, then an uncaught exception, then a hang (its heartbeats stop), then
a memory leak. The watchdog restarts it each time, at once (0.5 s delay).
Journal: $BLACKBOX_JOURNAL
TXT
blackbox-watchdog --state-dir "$work/watchdog" --restart-delay 0.5 --max-restarts 10 \
  --watchdog-timeout 3 --stop-timeout 2 --health-check-interval 0.5 \
  --max-memory 120 --limit-cycles 2 --log-file "$work/demo-output.log" \
  -- "${demo[@]}" &
watchdog_pid=$!

# Wait (at most ~60 s) until the watchdog has restarted the leaking run for
# memory, which is the last act of the tour.
for _ in $(seq 1 120); do
  sleep 0.5
  if ! kill -0 "$watchdog_pid" 2>/dev/null; then break; fi
  if blackbox replay --type restart --json 2>/dev/null | grep -q '"reason":"memory"'; then break; fi
done

say "blackbox-watchdog --status   (from another shell, while it runs)"
blackbox-watchdog --status --state-dir "$work/watchdog" || true

say "blackbox-watchdog --stop"
blackbox-watchdog --stop --state-dir "$work/watchdog" || true
wait "$watchdog_pid" 2>/dev/null || true

say "blackbox crashes   (one incident per death: the app's own capture and the watchdog's view of it, merged)"
blackbox crashes

say "blackbox replay -n 30   (the last 30 events of both streams, merged by time)"
blackbox replay -n 30

say "blackbox state   (folded from the journal)"
blackbox state

say "blackbox export --state system_state.json   (the seed's file, written atomically)"
blackbox export --state "$work/system_state.json"
cat "$work/system_state.json"

say "blackbox verify"
blackbox verify

cat <<TXT

Everything is in $work:
  journal/             the event journal (one RocksDB per stream: app, watchdog)
  demo-output.log      the demo's own output, as the watchdog captured it
  system_state.json    the exported state
Try: BLACKBOX_JOURNAL=$work/journal $bin/blackbox crashes show 1
TXT
