#!/usr/bin/env python3
"""The Python module's costs, each beside its baseline in one run.

    PYTHONPATH=build/python python3 bench/python/bench_python.py [--runs 5]

1. `with rm.exception_handler("x"):` around a body that does not raise,
   beside a bare contextlib.contextmanager that catches and re-raises
   (goal: <= 1.5x its cost).
2. A handled error (`with rm.exception_handler("x"): raise ValueError`)
   beside the same call from C++ (rm.exception_handler("x", throwing
   lambda), build/bin/python_bench_cpp); goal: <= 1.2x the C++ cost plus the
   traceback walk, which is measured on its own.
3. `rm.set_gauge` from Python beside `set_gauge` from C++.

Each run alternates the sides; the medians over the runs are printed, with
every run's figures. Journals go to a scratch folder under /tmp.
"""
import argparse
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import blackbox
from blackbox import _frames

REPO = pathlib.Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def bare():
    try:
        yield
    except Exception:
        raise


def per_call_ns(fn, n):
    start = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - start) / n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--enters", type=int, default=200000)
    p.add_argument("--gauges", type=int, default=50000)
    p.add_argument("--errors", type=int, default=200)
    p.add_argument("--cpp", default=str(REPO / "build" / "bin" / "python_bench_cpp"))
    a = p.parse_args()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="bb-pybench-"))
    rm = blackbox.CrashRecoveryManager(journal_dir=str(scratch / "py"), state_file=None,
                                       handle_signals=False, capture_crashes=False,
                                       max_recovery_attempts=1 << 30)

    def handler_loop(n):
        for _ in range(n):
            with rm.exception_handler("x"):
                pass

    def bare_loop(n):
        for _ in range(n):
            with bare():
                pass

    def gauge_loop(n):
        for i in range(n):
            rm.set_gauge("active_positions", i)

    def error_loop(n):
        for _ in range(n):
            try:
                with rm.exception_handler("x"):
                    raise ValueError("v")
            except ValueError:
                pass

    def walk_loop(n):
        try:
            raise ValueError("v")
        except ValueError as e:
            tb = e.__traceback__
        for _ in range(n):
            _frames(tb)

    rows = {k: [] for k in ("enter_py", "enter_bare", "gauge_py", "gauge_cpp", "error_py",
                            "error_cpp", "walk")}
    for run in range(a.runs):
        rows["enter_bare"].append(per_call_ns(bare_loop, a.enters))
        rows["enter_py"].append(per_call_ns(handler_loop, a.enters))
        rows["gauge_py"].append(per_call_ns(gauge_loop, a.gauges))
        rows["error_py"].append(per_call_ns(error_loop, a.errors))
        rows["walk"].append(per_call_ns(walk_loop, a.enters // 10))
        cpp = json.loads(subprocess.run(
            [a.cpp, str(scratch / f"cpp{run}"), str(a.gauges), str(a.errors)],
            check=True, capture_output=True, text=True).stdout)
        rows["gauge_cpp"].append(cpp["set_gauge_ns"])
        rows["error_cpp"].append(cpp["handled_error_ns"])
    rm.close()
    med = {k: statistics.median(v) for k, v in rows.items()}

    def show(name, num, den, goal):
        ratios = [n / d for n, d in zip(rows[num], rows[den])]
        print(f"{name}: {med[num] / 1000:.3f} us vs {med[den] / 1000:.3f} us, "
              f"median ratio {statistics.median(ratios):.2f}x ({goal}); per run: "
              + ", ".join(f"{r:.2f}x" for r in ratios))

    print(f"load average {os.getloadavg()[0]:.1f}, {a.runs} runs, python {sys.version.split()[0]}")
    show("exception_handler, no raise, vs bare contextmanager", "enter_py", "enter_bare",
         "goal <= 1.5x")
    show("handled error, Python vs C++", "error_py", "error_cpp",
         f"goal <= 1.2x + walk {med['walk'] / 1000:.3f} us")
    show("set_gauge, Python vs C++", "gauge_py", "gauge_cpp", "no goal")
    subprocess.run(["rm", "-rf", str(scratch)], check=False)


if __name__ == "__main__":
    main()
