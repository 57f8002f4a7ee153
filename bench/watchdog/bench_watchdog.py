#!/usr/bin/env python3
"""blackbox-watchdog beside supervisord, in one run.

1. Crash-to-restart latency at restart delay 0 over N crashes: the child
   (crasher.c, static) appends its CLOCK_MONOTONIC start time to a file and
   exits 1 at once, so the gap between consecutive starts is exit + detection
   + respawn + exec.
2. Footprint over 60 s of supervising a healthy (sleeping) child: RSS at the
   end and CPU time spent during the window, both supervisors measured in the
   same 60 s. CPU comes from /proc/<pid>/task/<tid>/schedstat (nanoseconds on
   a CPU, summed over the threads), not from /proc/<pid>/stat, whose 10 ms
   clock ticks are coarser than the 5 ms goal.

With --spawn-loop, the latency table also shows the floor: the same crasher
started back to back by a bare posix_spawn + waitpid loop (spawn_loop.c).

usage: bench_watchdog.py WATCHDOG_BIN TEST_CHILD_BIN CRASHER_BIN [--spawn-loop SPAWN_LOOP_BIN]
                         [--crashes 50] [--seconds 60]
Installs Debian's `supervisor` package when supervisord is missing.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

def ensure_supervisord():
    if shutil.which("supervisord") is None:
        print("supervisord not found: apt-get install -y supervisor", flush=True)
        subprocess.run(["apt-get", "install", "-y", "supervisor"], check=True,
                       stdout=subprocess.DEVNULL)
    out = subprocess.run(["supervisord", "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def wait_lines(path, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                if sum(1 for _ in f) >= count:
                    return True
        time.sleep(0.05)
    return False


def gaps_ms(path, count):
    with open(path) as f:
        starts = [int(line) for line in f if line.strip()][:count + 1]
    return [(b - a) / 1e6 for a, b in zip(starts, starts[1:])]


def supervisord_conf(work, name, command):
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"""[supervisord]
nodaemon=true
logfile={work}/{name}.log
pidfile={work}/{name}.pid
childlogdir={work}

[program:{name}]
command={command}
autostart=true
autorestart=true
startsecs=0
startretries=1000
exitcodes=0
stdout_logfile=NONE
stderr_logfile=NONE
""")
    return conf


def threads(pid):
    """{tid: (comm, ns on a CPU, times it was scheduled to run)} from schedstat."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns, _, runs = (int(x) for x in f.read().split())
        except OSError:
            continue  # the thread just ended
        out[int(tid)] = (comm, ns, runs)
    return out


def label(pid, tid, comm):
    if tid == pid:
        return "event loop" if comm.startswith("blackbox") else "main"
    if comm.startswith("blackbox"):
        return "rocksdb timer"  # RocksDB's periodic-task thread has no name of its own
    return comm


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def latency(args, work, version):
    n = args.crashes
    wd_starts = os.path.join(work, "wd-starts")
    wd = subprocess.run(
        [args.watchdog, "--restart-delay", "0", "--max-restarts", str(n),
         "--journal", os.path.join(work, "wd-journal"), "--state-dir", os.path.join(work, "wd-state"),
         "--", args.crasher, wd_starts],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    assert wd.returncode == 1, f"watchdog exited {wd.returncode}, expected 1 (budget spent)"

    # The floor right after the watchdog, so that both see the same load.
    floor_starts = os.path.join(work, "floor-starts")
    if args.spawn_loop:
        subprocess.run([args.spawn_loop, str(n + 1), args.crasher, floor_starts], check=True,
                       timeout=120)

    sd_starts = os.path.join(work, "sd-starts")
    conf = supervisord_conf(work, "crasher", f"{args.crasher} {sd_starts}")
    sd = subprocess.Popen(["supervisord", "-c", conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        ok = wait_lines(sd_starts, n + 1, timeout=n * 3 + 30)
    finally:
        sd.send_signal(signal.SIGTERM)
        sd.wait(timeout=30)
    assert ok, "supervisord did not restart the child often enough"

    runs = [("blackbox-watchdog", wd_starts), (version, sd_starts)]
    if args.spawn_loop:
        runs.append(("bare spawn+wait (floor)", floor_starts))
    rows = []
    for name, path in runs:
        gaps = gaps_ms(path, n)
        rows.append((name, len(gaps), statistics.median(gaps), max(gaps)))
    return rows


def footprint(args, work, version):
    wd = subprocess.Popen(
        [args.watchdog, "--journal", os.path.join(work, "fp-journal"),
         "--state-dir", os.path.join(work, "fp-state"),
         "--", args.child, "sleep", os.path.join(work, "fp-wd-pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = supervisord_conf(work, "healthy",
                            f"{args.child} sleep {os.path.join(work, 'fp-sd-pid')}")
    sd = subprocess.Popen(["supervisord", "-c", conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        assert wait_lines(os.path.join(work, "fp-wd-pid"), 1, 10)
        assert wait_lines(os.path.join(work, "fp-sd-pid"), 1, 10)
        time.sleep(1)  # past start-up: the window measures supervising only
        before = {p.pid: threads(p.pid) for p in (wd, sd)}
        time.sleep(args.seconds)
        after = {p.pid: threads(p.pid) for p in (wd, sd)}
        rows, detail = [], []
        for name, p in (("blackbox-watchdog", wd), (version, sd)):
            window_ns = wakeups = total_ns = 0
            for tid, (comm, ns, runs) in after[p.pid].items():
                _, ns0, runs0 = before[p.pid].get(tid, (comm, 0, 0))
                window_ns += ns - ns0
                wakeups += runs - runs0
                total_ns += ns
                if p is wd:
                    detail.append((label(p.pid, tid, comm), (ns - ns0) / 1e6, runs - runs0))
            rows.append((name, rss_mb(p.pid), window_ns / 1e6, wakeups, total_ns / 1e6))
        return rows, detail
    finally:
        for p in (wd, sd):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("watchdog")
    parser.add_argument("child")
    parser.add_argument("crasher")
    parser.add_argument("--spawn-loop", help="spawn_loop binary: also measure the floor")
    parser.add_argument("--crashes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    version = "supervisord " + ensure_supervisord()
    with tempfile.TemporaryDirectory(prefix="bbwd-bench.") as work:
        print(f"crash-to-restart latency, restart delay 0, {args.crashes} crashes")
        print(f"{'supervisor':<24}{'restarts':>9}{'median ms':>11}{'max ms':>10}")
        rows = latency(args, work, version)
        for name, count, median, worst in rows:
            print(f"{name:<24}{count:>9}{median:>11.3f}{worst:>10.3f}")
        print(f"ratio of medians: {rows[1][2] / rows[0][2]:.0f}x")
        if args.spawn_loop:
            print(f"blackbox-watchdog over the floor: {rows[0][2] - rows[2][2]:+.3f} ms (median)")
        print()
        print(f"footprint while supervising a healthy child for {args.seconds:.0f} s "
              "(CPU from schedstat, all threads)")
        print(f"{'supervisor':<24}{'RSS MB':>8}{'CPU ms in window':>18}{'runs':>6}"
              f"{'CPU ms since start':>20}")
        rows, detail = footprint(args, work, version)
        for name, rss, cpu_window, wakeups, cpu_total in rows:
            print(f"{name:<24}{rss:>8.1f}{cpu_window:>18.3f}{wakeups:>6}{cpu_total:>20.3f}")
        print(f"ratio of CPU in window: {rows[1][2] / max(rows[0][2], 1e-9):.1f}x")
        print("blackbox-watchdog by thread, in the window:")
        for name, cpu, wakeups in sorted(detail):
            print(f"  {name:<22}{cpu:>10.3f} ms{wakeups:>6} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
