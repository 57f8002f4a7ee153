"""A Python service under blackbox-watchdog: heartbeats from Python keep it
alive, and when they stop the watchdog sees a hang and restarts it."""
import os
import subprocess
import sys

from conftest import BIN_DIR, events

SERVICE = """
import sys, time, blackbox
rm = blackbox.CrashRecoveryManager(journal_dir="j")
print("run", rm.state.restart_count, flush=True)
for _ in range(10):
    rm.heartbeat()
    time.sleep(0.05)
if rm.state.restart_count == 0:
    print("hanging", flush=True)
    time.sleep(120)        # no more heartbeats: hung
rm.graceful_shutdown()     # the second run ends cleanly, so does the watchdog
"""


def test_heartbeats_from_python_and_a_hang_detected_by_the_watchdog(tmp_path):
    (tmp_path / "service.py").write_text(SERVICE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("BLACKBOX_JOURNAL", None)
    out = subprocess.run(
        [str(BIN_DIR / "blackbox-watchdog"), "--journal", "j", "--state-dir", "wd",
         "--restart-delay", "0.1", "--max-restarts", "2", "--watchdog-timeout", "4",
         "--stop-timeout", "2", "--", sys.executable, str(tmp_path / "service.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "run 0" in out.stdout and "hanging" in out.stdout and "run 1" in out.stdout
    restarts = [e for e in events(tmp_path / "j", "restart") if e["stream"] == "watchdog"]
    assert [r["reason"] for r in restarts] == ["hang"]
    # The hung run was stopped with SIGABRT: its own crash capture recorded it.
    app_crashes = [e for e in events(tmp_path / "j", "crash") if e["stream"] == "app"]
    assert [c["signal_name"] for c in app_crashes] == ["SIGABRT"]
    assert events(tmp_path / "j", "lifecycle")[-1]["phase"] == "stopped"
