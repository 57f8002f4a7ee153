"""Deaths of a Python process, each checked from a fresh process with the
`blackbox` tool: an uncaught exception, a segfault inside a C extension, and
a SIGKILL followed by a start."""
import json
import signal
import subprocess
import sys
import os

from conftest import events, folded_state, run_python, tool_json_lines

UNCAUGHT = """
import blackbox
rm = blackbox.CrashRecoveryManager(journal_dir="j")

def settle(order):
    raise ValueError(f"cannot settle {order}")

def main():
    settle("order-7")

main()
"""

SEGFAULT = """
import ctypes, blackbox
rm = blackbox.CrashRecoveryManager(journal_dir="j")

def read_price():
    return ctypes.string_at(0)

read_price()
"""

RESTART = """
import json, blackbox
rm = blackbox.CrashRecoveryManager(journal_dir="j")
print(json.dumps({"restart_count": rm.state.restart_count,
                  "crash_count": rm.state.crash_count}))
rm.graceful_shutdown()
"""


def test_uncaught_exception_is_journaled_as_a_crash_with_its_traceback(tmp_path):
    out = run_python(UNCAUGHT, cwd=tmp_path, check_rc=1)
    assert "ValueError: cannot settle order-7" in out.stderr  # Python's own report still runs
    [crash] = tool_json_lines("crashes", journal=tmp_path / "j")
    assert crash["origin"] == "terminate"
    assert crash["exception_type"] == "ValueError"
    assert crash["exception_message"] == "cannot settle order-7"
    child = str(tmp_path / "child.py")
    assert crash["frames"] == [f"{child}:6 in settle", f"{child}:9 in main",
                               f"{child}:11 in <module>"]
    # The run did not end cleanly: the next start counts the restart.
    again = json.loads(run_python(RESTART, cwd=tmp_path, check_rc=0).stdout)
    assert again == {"restart_count": 1, "crash_count": 1}
    [restart] = events(tmp_path / "j", "restart")
    assert restart["reason"] == "unclean"


def test_segfault_in_a_c_extension_is_captured_like_a_native_crash(tmp_path):
    run_python(SEGFAULT, cwd=tmp_path, check_rc=-signal.SIGSEGV)
    # The record is in the spill file; the next start journals it.
    again = json.loads(run_python(RESTART, cwd=tmp_path, check_rc=0).stdout)
    assert again == {"restart_count": 1, "crash_count": 1}
    [crash] = tool_json_lines("crashes", journal=tmp_path / "j")
    assert crash["origin"] == "signal"
    assert crash["signal"] == signal.SIGSEGV
    assert crash["signal_name"] == "SIGSEGV"
    assert crash["fault_address"] == 0
    frames = crash["frames"]
    assert len(frames) > 3
    # The faulting instruction first, as in a crash without faulthandler in
    # front (not the re-raise that chained the two handlers).
    assert "strlen" in frames[0], frames
    assert "_ctypes" in frames[1], frames
    assert any("python" in f.lower() for f in frames), frames
    # After the native frames, the Python stack of the crashing thread.
    child = str(tmp_path / "child.py")
    assert frames[-2:] == [f"{child}:6 in read_price", f"{child}:8 in <module>"], frames


def test_segfault_in_a_thread_carries_that_threads_python_stack(tmp_path):
    run_python(
        """
        import ctypes, threading, blackbox
        rm = blackbox.CrashRecoveryManager(journal_dir="j")

        def feed_handler():
            ctypes.string_at(0)

        t = threading.Thread(target=feed_handler)
        t.start()
        t.join()
        """,
        cwd=tmp_path,
        check_rc=-signal.SIGSEGV,
    )
    run_python(RESTART, cwd=tmp_path, check_rc=0)
    [crash] = tool_json_lines("crashes", journal=tmp_path / "j")
    python_frames = [f for f in crash["frames"] if str(tmp_path) in f]
    assert python_frames[0] == f"{tmp_path / 'child.py'}:6 in feed_handler", crash["frames"]
    assert not any("<module>" in f for f in python_frames)  # not the main thread's stack


def test_sigkill_then_start_counts_the_unclean_restart(tmp_path):
    child = tmp_path / "child.py"
    child.write_text(
        "import sys, time, blackbox\n"
        "rm = blackbox.CrashRecoveryManager(journal_dir='j')\n"
        "rm.state.active_positions = 2\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, str(child)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stdout.close()
    assert folded_state(tmp_path / "j")["status"] == "running"  # nobody recorded the end
    again = json.loads(run_python(RESTART, cwd=tmp_path, check_rc=0).stdout)
    assert again["restart_count"] == 1
    [restart] = events(tmp_path / "j", "restart")
    assert restart["reason"] == "unclean"
    assert folded_state(tmp_path / "j")["restart_count"] == 1
