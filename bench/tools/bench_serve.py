#!/usr/bin/python3
"""How fast `blackbox serve` answers over a month of journal, and how much it holds.

  bench_serve.py --bin build/bin [--samples 1000000] [--crashes 300] [--keep DIR]

Writes a journal with `blackbox import`: SAMPLES health samples of the
watchdog stream at a 2.6 s spacing (1,000,000 of them cover 30 days; a month
of 1 s samples would be about 2.6M), cut into CRASHES + 1 runs of the app,
each but the last ending in a SIGSEGV (the app's crash with its frames, the
watchdog's crash, backoff and restart, as the watchdog journals them). Then it
starts `blackbox serve --listen 127.0.0.1:0` and measures:

- `/api/health?points=1000` over the whole range, 5 times (median ms);
- the page in headless Chromium (selenium), 3 times (median ms), from
  `driver.get` until it is fully drawn: the status line reads "N runs, M
  crashes" with the journal's counts, the crash list has M entries and the
  memory chart has its line (`#memory path.series`);
- the VmRSS of the serve process after that.

Goals: /api/health <= 200 ms, page <= 2 s, RSS <= 64 MB. Not part of ctest.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

T0_NS = 1768473000 * 1_000_000_000  # 2026-01-15T10:30:00Z
SPACING_NS = 2_600_000_000
WATCHDOG_PID = 4000


def utc(ns):
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


class Stream:
    def __init__(self, name, out):
        self.name, self.out, self.seq = name, out, 0
        self.events = 0

    def write(self, t_ns, kind, severity, pid, **fields):
        self.seq += 1
        self.events += 1
        e = {"seq": self.seq, "stream": self.name, "time": utc(t_ns), "type": kind,
             "severity": severity, "pid": pid, "mono_ns": t_ns - T0_NS + 1}
        e.update(fields)
        self.out.write(json.dumps(e, separators=(",", ":")) + "\n")


def lifecycle(phase, reason=None, child_pid=0, signal=0):
    return dict(phase=phase, reason=reason, child_pid=child_pid, exit_code=-1, signal=signal,
                core_dumped=False)


def write_history(path, samples, crashes):
    """The JSON Lines history; returns (events, runs, crashes)."""
    with open(path, "w") as out:
        wd, app = Stream("watchdog", out), Stream("app", out)
        # Lines of one file must be in time order per stream; both streams
        # are written in time order, so one file holds both.
        wd.write(T0_NS, "config", "info", WATCHDOG_PID, component="watchdog",
                 entries={"max_memory_mb": "512", "max_cpu_percent": "90"})
        wd.write(T0_NS, "lifecycle", "info", WATCHDOG_PID, **lifecycle("starting", "watchdog started"))
        runs = crashes + 1
        per_run = samples // runs
        i = 0
        frames = ["demo::route_order_with_corrupt_book(int) +0xe (blackbox-demo) at ../examples/order_router.cpp:42",
                  "main +0xeb3 (blackbox-demo) at ../examples/order_router.cpp:121"]
        for run in range(runs):
            pid = 10000 + run
            start = T0_NS + i * SPACING_NS + 1_000_000
            wd.write(start, "lifecycle", "info", WATCHDOG_PID, **lifecycle("starting", child_pid=pid))
            app.write(start + 1000, "lifecycle", "info", pid, **lifecycle("starting", f"pid {pid}"))
            app.write(start + 2000, "lifecycle", "info", pid, **lifecycle("running", "ready"))
            wd.write(start + 3000, "lifecycle", "info", WATCHDOG_PID,
                     **lifecycle("running", "running: ready", child_pid=pid))
            n = per_run if run < runs - 1 else samples - i
            for k in range(n):
                t = T0_NS + (i + k) * SPACING_NS + 5_000_000
                rss = (40 + (k % 5000) * 0.01 + (k * 7919 % 13)) * 1048576
                wd.write(t, "health", "info", WATCHDOG_PID, rss_bytes=int(rss),
                         cpu_percent=float(5 + (k * 31 % 40)), memory_percent=1.0, disk_percent=10.0,
                         threads=7, open_fds=12, sampled_pid=pid, over_threshold=False)
            i += n
            if run == runs - 1:
                break
            t = T0_NS + (i - 1) * SPACING_NS + 10_000_000
            app.write(t, "crash", "critical", pid, origin="signal", signal=11, signal_name="SIGSEGV",
                      fault_address=0, frames=frames, exception_type=None, exception_message=None,
                      crashed_pid=pid, exit_code=-1, core_dumped=False, crash_time_ns=t)
            wd.write(t + 1000, "crash", "critical", WATCHDOG_PID, origin="watchdog", signal=11,
                     signal_name="SIGSEGV", fault_address=0, frames=[], exception_type=None,
                     exception_message=None, crashed_pid=pid, exit_code=-1, core_dumped=False,
                     crash_time_ns=t + 1000)
            wd.write(t + 2000, "lifecycle", "info", WATCHDOG_PID,
                     **lifecycle("backoff", "crash: child killed by SIGSEGV", pid, 11))
            wd.write(t + 3000, "restart", "warning", WATCHDOG_PID, attempt=run + 1, reason="crash",
                     exit_code=-1, signal=11, delay_ms=200, child_pid=pid + 1)
    return wd.events + app.events


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory with the blackbox binary")
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--crashes", type=int, default=300)
    ap.add_argument("--keep", help="write the journal here and keep it (reused if present)")
    args = ap.parse_args()
    tool = os.path.join(args.bin, "blackbox")
    if not os.access(tool, os.X_OK):
        print(f"bench_serve: {tool} is not executable", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="blackbox-bench-serve.")
    journal = args.keep or os.path.join(work, "journal")
    env = dict(os.environ, BLACKBOX_JOURNAL=journal, TZ="UTC")

    def blackbox(*argv):
        r = subprocess.run([tool, "--no-pager", *argv], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"blackbox {' '.join(argv)}: {r.stderr.strip()}")
        return r.stdout

    if not os.path.isdir(journal):
        history = os.path.join(work, "history.jsonl")
        t = time.monotonic()
        write_history(history, args.samples, args.crashes)
        blackbox("import", history)
        os.unlink(history)
        print(f"journal written in {time.monotonic() - t:.1f} s: {journal}")
    events = sum(1 for _ in blackbox("replay", "--json").splitlines())
    crashes = len([l for l in blackbox("crashes", "--json").splitlines() if l.strip()])
    runs = len(blackbox("replay", "--stream", "watchdog", "--type", "restart", "--json").splitlines()) + 1
    du = subprocess.run(["du", "-sb", journal], capture_output=True, text=True).stdout.split()[0]
    print(f"{events} events ({int(du) / 1e6:.1f} MB on disk), {runs} runs, {crashes} crashes")

    server = subprocess.Popen([tool, "serve", "--listen", "127.0.0.1:0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    driver = None
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        health_ms = []
        for _ in range(5):
            t = time.monotonic()
            with urllib.request.urlopen(url.rstrip("/") + "/api/health?points=1000") as r:
                body = r.read()
            health_ms.append((time.monotonic() - t) * 1000)
        buckets = sum(len(s) for s in json.loads(body)["series"].values())
        print(f"/api/health?points=1000 (whole range, {buckets} buckets, {len(body)} bytes): "
              f"median {statistics.median(health_ms):.0f} ms of "
              + ", ".join(f"{v:.0f}" for v in health_ms))

        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        options = Options()
        options.binary_location = shutil.which("chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
            options.add_argument(a)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        want = f"{runs} runs, {crashes} crashes"

        def drawn():
            status = driver.find_element(By.ID, "status").text
            return (status.startswith(want)
                    and len(driver.find_elements(By.CSS_SELECTOR, "#crashes li.crash")) == crashes
                    and driver.find_elements(By.CSS_SELECTOR, "#memory path.series"))

        page_ms = []
        for _ in range(3):
            driver.get("about:blank")
            t = time.monotonic()
            driver.get(url)
            deadline = t + 60
            while not drawn():
                if time.monotonic() > deadline:
                    raise RuntimeError("page not drawn in 60 s: status "
                                       + repr(driver.find_element(By.ID, "status").text))
                time.sleep(0.01)
            page_ms.append((time.monotonic() - t) * 1000)
        print(f"page fully drawn ({want!r}, {crashes} crashes listed, memory line): "
              f"median {statistics.median(page_ms):.0f} ms of " + ", ".join(f"{v:.0f}" for v in page_ms))
        rss = vm_rss_kb(server.pid)
        print(f"serve VmRSS after that: {rss / 1024:.1f} MB")
        ok = lambda b: "met" if b else "NOT met"
        print(f"goals: /api/health <= 200 ms {ok(statistics.median(health_ms) <= 200)}; "
              f"page <= 2 s {ok(statistics.median(page_ms) <= 2000)}; "
              f"RSS <= 64 MB {ok(rss <= 64 * 1024)}")
    finally:
        if driver:
            driver.quit()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
