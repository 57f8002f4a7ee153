#!/usr/bin/env python3
"""blackbox-watchdog with and without --journal-ring-mb, side by side.

Two watchdogs run at the same time, each over its own crash-looping child
(watchdog_test_child count FILE 1, --restart-delay 0), one with its stream's
journal in ring mode (--journal-ring-mb 4), one without. After SECONDS both
are read: VmRSS and RssFile (the mapped ring's pages are file pages), the
restarts each made, and CPU time since start (/proc/PID/schedstat of every
thread). Then both are stopped and `blackbox verify` checks their journals.
Repeated --rounds times; medians are printed with every round.

  bench_ring.py WATCHDOG CHILD TOOL [--seconds S] [--rounds N]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def status_mb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_ms(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread ended meanwhile
    return total / 1e6


def lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def one_round(args, work, k):
    runs = {}
    for name, extra in (("direct", []), ("ring 4 MiB", ["--journal-ring-mb", "4"])):
        d = os.path.join(work, f"{k}-{name.split()[0]}")
        os.makedirs(d)
        starts = os.path.join(d, "starts")
        p = subprocess.Popen(
            [args.watchdog, "--journal", os.path.join(d, "journal"), "--state-dir",
             os.path.join(d, "state"), "--max-restarts", "1000000", "--restart-delay", "0",
             *extra, "--", args.child, "count", starts, "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs[name] = (p, d, starts)
    time.sleep(args.seconds)
    rows = {}
    for name, (p, d, starts) in runs.items():
        rows[name] = (status_mb(p.pid, "VmRSS"), status_mb(p.pid, "RssFile"), cpu_ms(p.pid),
                      lines(starts))
    for name, (p, d, starts) in runs.items():
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        v = subprocess.run([args.tool, "--journal", os.path.join(d, "journal"), "verify"],
                           capture_output=True, text=True)
        if v.returncode != 0:
            sys.exit(f"verify failed for {name}: {v.stdout}{v.stderr}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("watchdog")
    parser.add_argument("child")
    parser.add_argument("tool")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    all_rows = []
    with tempfile.TemporaryDirectory(prefix="bbwd-ring.") as work:
        print(f"{args.rounds} rounds of {args.seconds:.0f} s, both watchdogs at once, "
              "each over a crash loop (restart delay 0)")
        print(f"{'round':<6}{'journal':<12}{'VmRSS MB':>9}{'RssFile MB':>11}{'CPU ms':>9}"
              f"{'starts':>8}{'CPU us/start':>13}")
        for k in range(args.rounds):
            rows = one_round(args, work, k)
            all_rows.append(rows)
            for name, (rss, rss_file, cpu, starts) in rows.items():
                print(f"{k + 1:<6}{name:<12}{rss:>9.1f}{rss_file:>11.1f}{cpu:>9.0f}{starts:>8}"
                      f"{1000 * cpu / max(starts, 1):>13.1f}")
    print("medians:")
    for name in all_rows[0]:
        med = [statistics.median(r[name][i] for r in all_rows) for i in range(4)]
        per = statistics.median(1000 * r[name][2] / max(r[name][3], 1) for r in all_rows)
        print(f"      {name:<12}{med[0]:>9.1f}{med[1]:>11.1f}{med[2]:>9.0f}{med[3]:>8.0f}"
              f"{per:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
