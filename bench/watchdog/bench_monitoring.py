#!/usr/bin/env python3
"""What monitoring costs the watchdog, in one run, side by side.

1. Crash-to-restart latency at restart delay 0 over N crashes, with
   monitoring off (no --metrics-listen, no --alert-exec), with the metrics
   server on (scraped every second by a real Prometheus), with an
   --alert-exec program (the default --alert-interval: it runs for the first
   crash of the loop), with both, and, as the worst case, with the program
   run for every crash (--alert-interval 0). The configurations alternate over R rounds so that all see the
   same load; the figure is the median of every gap of a configuration.
2. RSS of the watchdog supervising a sleeping child, after S seconds, with
   the metrics server off and on (scraped by the same Prometheus).

usage: bench_monitoring.py WATCHDOG_BIN TEST_CHILD_BIN CRASHER_BIN
                           [--crashes 300] [--rounds 5] [--seconds 20]
Needs Debian's `prometheus` (scripts/deps.sh installs it). Every address is
on 127.0.0.1.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_lines(path, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                if sum(1 for _ in f) >= count:
                    return True
        time.sleep(0.05)
    return False


def gaps_ms(path):
    with open(path) as f:
        starts = [int(line) for line in f if line.strip()]
    return [(b - a) / 1e6 for a, b in zip(starts, starts[1:])]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def start_prometheus(work, target_port):
    port = free_port()
    conf = os.path.join(work, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: watchdog
    static_configs:
      - targets: ['127.0.0.1:{target_port}']
""")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={work}/tsdb"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return prom


def watchdog_args(args, work, name, monitoring, metrics_port):
    argv = [args.watchdog, "--journal", os.path.join(work, f"{name}-journal"),
            "--state-dir", os.path.join(work, f"{name}-state")]
    if monitoring in ("metrics", "both"):
        argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    if monitoring == "metrics-idle":
        argv += ["--metrics-listen", "127.0.0.1:0"]  # Prometheus does not scrape this one
    if monitoring in ("alerts", "both"):
        argv += ["--alert-exec", "/bin/true"]  # the default --alert-interval, 60 s
    if monitoring == "every-alert":
        argv += ["--alert-exec", "/bin/true", "--alert-interval", "0"]
    return argv


def crash_loop(args, work, name, monitoring, metrics_port):
    starts = os.path.join(work, f"{name}-starts")
    argv = watchdog_args(args, work, name, monitoring, metrics_port)
    argv += ["--restart-delay", "0", "--max-restarts", str(args.crashes),
             "--", args.crasher, starts]
    wd = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert wd.returncode == 1, f"watchdog exited {wd.returncode}, expected 1 (budget spent)"
    return gaps_ms(starts)


def footprint(args, work, name, monitoring, metrics_port):
    pid_file = os.path.join(work, f"{name}-pid")
    argv = watchdog_args(args, work, name, monitoring, metrics_port)
    argv += ["--", args.child, "sleep", pid_file]
    wd = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_lines(pid_file, 1, 10)
        time.sleep(args.seconds)
        return rss_mb(wd.pid)
    finally:
        wd.send_signal(signal.SIGTERM)
        wd.wait(timeout=30)


def latency_table(args, modes, gaps, per_round):
    print(f"crash-to-restart latency, restart delay 0, {args.crashes} crashes x "
          f"{args.rounds} rounds, alternating")
    print(f"{'monitoring':<50}{'restarts':>9}{'median ms':>11}  per-round medians")
    names = {"off": "off",
             "metrics-idle": "metrics server on, not scraped",
             "metrics": "metrics scraped 1/s",
             "alerts": "alert-exec (default interval)",
             "both": "both of them",
             "every-alert": "alert-exec for every crash (interval 0)"}
    for monitoring in modes:
        rounds = " ".join(f"{m:.3f}" for m in per_round[monitoring])
        print(f"{names[monitoring]:<50}{len(gaps[monitoring]):>9}"
              f"{statistics.median(gaps[monitoring]):>11.3f}  {rounds}")
    for monitoring in modes[1:]:
        ratio = statistics.median(gaps[monitoring]) / statistics.median(gaps["off"])
        print(f"{monitoring} / off, median of every gap: {ratio:.3f}x")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("watchdog")
    parser.add_argument("child")
    parser.add_argument("crasher")
    parser.add_argument("--crashes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--footprints", type=int, default=3,
                        help="RSS measurements per configuration (the median is quoted)")
    parser.add_argument("--footprint-only", action="store_true",
                        help="skip the latency part")
    args = parser.parse_args()
    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bbwd-monitoring.") as work:
        prom = start_prometheus(work, metrics_port)
        try:
            time.sleep(2)  # Prometheus up and scraping (nothing there yet)
            modes = ("off", "metrics-idle", "metrics", "alerts", "both", "every-alert")
            gaps = {m: [] for m in modes}
            per_round = {m: [] for m in modes}
            for r in range(0 if args.footprint_only else args.rounds):
                for monitoring in modes:
                    g = crash_loop(args, work, f"r{r}-{monitoring}", monitoring, metrics_port)
                    gaps[monitoring] += g
                    per_round[monitoring].append(statistics.median(g))
            if not args.footprint_only:
                latency_table(args, modes, gaps, per_round)
            off, on = [], []
            for n in range(args.footprints):  # alternating
                off.append(footprint(args, work, f"fp-off-{n}", "off", metrics_port))
                on.append(footprint(args, work, f"fp-on-{n}", "metrics", metrics_port))
            print(f"RSS supervising a sleeping child after {args.seconds:.0f} s, "
                  f"median of {args.footprints} (each run)")
            print(f"  metrics off: {statistics.median(off):.2f} MB  "
                  f"({' '.join(f'{x:.2f}' for x in off)})")
            print(f"  metrics on, scraped 1/s: {statistics.median(on):.2f} MB  "
                  f"({' '.join(f'{x:.2f}' for x in on)})")
        finally:
            prom.send_signal(signal.SIGTERM)
            prom.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
