"""The original Python API on the recovery manager: every call, checked in
the journal with the `blackbox` tool."""
import datetime
import inspect
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

import blackbox
from conftest import events, folded_state, run_python, tool_json_lines


def _raise_value_error():
    raise ValueError("price out of range")  # the innermost frame


def _line_of(fn, text):
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_constructor_has_the_original_defaults():
    params = inspect.signature(blackbox.CrashRecoveryManager).parameters
    assert list(params)[:4] == ["state_file", "max_restarts", "restart_delay",
                                "health_check_interval"]
    assert params["state_file"].default == "system_state.json"
    assert params["max_restarts"].default == 5
    assert params["restart_delay"].default == 30
    assert params["health_check_interval"].default == 60
    assert params["journal_dir"].default is None
    assert params["journal_ring_bytes"].default == 0
    assert params["journal_dir"].kind is inspect.Parameter.KEYWORD_ONLY
    for name in ("stream", "max_recovery_attempts", "handle_signals", "capture_crashes",
                 "memory_warning_percent", "cpu_warning_percent", "disk_warning_percent",
                 "snapshot_every", "forecast_horizon", "forecast_memory_limit_bytes",
                 "journal_ring_bytes"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert inspect.signature(blackbox.CrashRecoveryManager.exception_handler).parameters[
        "context"].default == "unknown"


def test_default_manager_writes_the_default_journal_and_state_file(tmp_path):
    out = run_python(
        """
        import json, blackbox
        rm = blackbox.get_recovery_manager()
        assert blackbox.get_recovery_manager() is rm
        print(json.dumps(rm.options))
        rm.graceful_shutdown()
        """,
        cwd=tmp_path,
        check_rc=0,
    )
    options = json.loads(out.stdout)
    assert options["state_file"] == "system_state.json"
    assert options["max_restarts"] == 5
    assert options["restart_delay"] == 30
    assert options["health_check_interval"] == 60
    assert options["max_recovery_attempts"] == 3
    assert options["handle_signals"] and options["capture_crashes"]
    assert (tmp_path / "blackbox-journal" / "app").is_dir()
    assert json.loads((tmp_path / "system_state.json").read_text())["status"] == "stopped"


def test_initialize_recovery_manager_replaces_the_process_wide_one(tmp_path):
    out = run_python(
        """
        import json, blackbox
        first = blackbox.get_recovery_manager()
        rm = blackbox.initialize_recovery_manager(
            state_file="custom_state.json", max_restarts=10, restart_delay=60,
            health_check_interval=30, journal_dir="custom-journal")
        assert blackbox.get_recovery_manager() is rm and rm is not first
        assert first.closed
        print(json.dumps(rm.options))
        """,
        cwd=tmp_path,
        check_rc=0,
    )
    options = json.loads(out.stdout)
    assert (options["state_file"], options["max_restarts"], options["restart_delay"],
            options["health_check_interval"]) == ("custom_state.json", 10, 60, 30)
    config = [e for e in events(tmp_path / "custom-journal", "config")]
    assert config[-1]["entries"]["max_restarts"] == "10"
    assert config[-1]["entries"]["restart_delay_ms"] == "60000"


def test_exception_handler_journals_recovers_and_reraises_the_same_exception(
        make_manager, journal):
    rm = make_manager()
    ran = []

    def reconnect_broker():
        ran.append("reconnect_broker")

    rm.register_recovery_callback(reconnect_broker)
    with pytest.raises(ValueError) as caught:
        with rm.exception_handler("order_execution"):
            _raise_value_error()
    assert ran == ["reconnect_broker"]
    # The traceback is the original one: its innermost frame is the raise.
    tb = caught.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == "_raise_value_error"
    assert tb.tb_lineno == _line_of(_raise_value_error, "raise ValueError")

    [error] = events(journal, "error")
    assert error["context"] == "order_execution"
    assert error["exception_type"] == "ValueError"
    assert error["message"] == "price out of range"
    here = os.path.abspath(__file__)
    assert error["frames"][0] == (
        f"{here}:{_line_of(_raise_value_error, 'raise ValueError')} in _raise_value_error")
    assert error["frames"][1].startswith(f"{here}:")
    assert error["frames"][1].endswith(
        "in test_exception_handler_journals_recovers_and_reraises_the_same_exception")
    assert error["severity"] == "error"
    [callback] = events(journal, "callback")
    assert (callback["kind"], callback["name"], callback["ok"]) == (
        "recovery", "reconnect_broker", True)
    assert rm.state.last_error == "price out of range"
    assert rm.state.status == "running"  # recovered


def test_exception_handler_without_argument_uses_context_unknown(make_manager, journal):
    rm = make_manager()
    with pytest.raises(KeyError):
        with rm.exception_handler():
            raise KeyError("symbol")
    [error] = events(journal, "error")
    assert error["context"] == "unknown"
    assert error["exception_type"] == "KeyError"


def test_exception_handler_records_nothing_without_an_exception(make_manager, journal):
    rm = make_manager()
    with rm.exception_handler("quiet") as value:
        pass
    assert value is None
    with pytest.raises(KeyboardInterrupt):
        with rm.exception_handler("interrupted"):
            raise KeyboardInterrupt
    assert events(journal, "error") == []


def test_exception_type_of_a_user_class_is_qualified(make_manager, journal):
    class BrokerError(Exception):
        pass

    rm = make_manager()
    with pytest.raises(BrokerError):
        with rm.exception_handler("broker"):
            raise BrokerError("disconnected")
    [error] = events(journal, "error")
    assert error["exception_type"].endswith("BrokerError")
    assert error["exception_type"].startswith("test_api.")


def test_a_callback_that_raises_is_a_failed_callback(make_manager, journal):
    rm = make_manager()

    def reconnect_broker():
        raise ConnectionError("broker down")

    rm.register_recovery_callback(reconnect_broker)
    with pytest.raises(ValueError):
        with rm.exception_handler("op"):
            raise ValueError("x")
    [callback] = events(journal, "callback")
    assert callback["ok"] is False
    assert "ConnectionError: broker down" in callback["error"]
    assert rm.state.recovery_attempts == 1
    assert rm.state.status == "error"
    assert rm._attempt_recovery() is False
    assert rm.state.recovery_attempts == 2


def test_attempt_recovery_runs_every_callback(make_manager, journal):
    rm = make_manager()
    ran = []
    rm.register_recovery_callback(lambda: ran.append(1))
    rm.register_recovery_callback(lambda: ran.append(2))
    assert rm._attempt_recovery() is True
    assert ran == [1, 2]
    assert [c["name"] for c in events(journal, "callback")] == ["<lambda>", "<lambda>"]


def test_recovery_exhausted_exits_70(tmp_path):
    out = run_python(
        """
        import blackbox
        rm = blackbox.CrashRecoveryManager(journal_dir="j", max_recovery_attempts=2)
        def fails():
            raise RuntimeError("no")
        rm.register_recovery_callback(fails)
        for i in range(3):
            try:
                with rm.exception_handler("op"):
                    raise ValueError(i)
            except ValueError:
                print("recovery failed", i, flush=True)
        print("not reached")
        """,
        cwd=tmp_path,
        check_rc=blackbox.RECOVERY_EXHAUSTED_EXIT_CODE,
    )
    assert "not reached" not in out.stdout
    assert folded_state(tmp_path / "j")["status"] == "failed"


def test_cleanup_callbacks_run_at_graceful_shutdown_which_returns(make_manager, journal):
    rm = make_manager()
    ran = []

    def close_all_positions():
        ran.append("close")

    def save_trading_state():
        raise OSError("disk full")

    rm.register_cleanup_callback(close_all_positions)
    rm.register_cleanup_callback(save_trading_state)
    rm.graceful_shutdown()  # the original called sys.exit(0) here
    rm.graceful_shutdown()  # once only
    assert ran == ["close"]
    callbacks = events(journal, "callback")
    assert [(c["kind"], c["name"], c["ok"]) for c in callbacks] == [
        ("cleanup", "close_all_positions", True), ("cleanup", "save_trading_state", False)]
    assert events(journal, "lifecycle")[-1]["phase"] == "stopped"
    assert rm.state.status == "stopped"


def test_health_monitoring_journals_samples_and_writes_the_state_file(
        make_manager, journal, tmp_path):
    rm = make_manager(health_check_interval=0.05)
    rm.start_health_monitoring()
    rm.start_health_monitoring()  # idempotent
    deadline = time.monotonic() + 30
    while len(events(journal, "health")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    rm.stop_health_monitoring()
    samples = events(journal, "health")
    assert len(samples) >= 2
    assert all(s["sampled_pid"] == os.getpid() and s["rss_bytes"] > 0 for s in samples)
    state = json.loads((tmp_path / "system_state.json").read_text())
    assert state["memory_usage"] > 0
    assert rm.state.memory_usage > 0


def test_a_leaking_python_process_gets_a_memory_forecast(make_manager, journal):
    # 2 MB more every 50 ms against a 400 MB limit: the health monitor's own
    # forecast, in the journal and in the folded state while it holds.
    rm = make_manager(health_check_interval=0.05, forecast_memory_limit_bytes=400 << 20)
    assert rm.options["forecast_horizon"] == 600
    assert rm.options["forecast_memory_limit_bytes"] == 400 << 20
    rm.start_health_monitoring()
    leaked = []
    deadline = time.monotonic() + 30
    while not events(journal, "forecast") and time.monotonic() < deadline:
        for _ in range(4):
            leaked.append(bytearray(b"x" * (2 << 20)))
            time.sleep(0.05)
    forecasts = events(journal, "forecast")
    assert forecasts, "no forecast"
    assert forecasts[0]["resource"] == "rss"
    assert "reaches the 400 MB limit" in forecasts[0]["message"]
    assert "rss" in folded_state(journal)["forecasts"]
    rm.stop_health_monitoring()
    del leaked


def test_get_system_info_has_the_original_keys_and_the_native_ones(make_manager):
    rm = make_manager()
    info = rm.get_system_info()
    for key in ("pid", "memory_usage_mb", "cpu_percent", "uptime_seconds", "status",
                "restart_count", "recovery_attempts", "last_error", "memory_percent",
                "disk_percent", "threads", "open_fds"):
        assert key in info, key
    assert info["pid"] == os.getpid()
    assert info["memory_usage_mb"] > 0
    assert info["status"] == "running"
    assert info["last_error"] is None
    assert info["threads"] >= 1 and info["open_fds"] >= 3


def test_state_has_the_original_fields_read_from_the_fold(make_manager, journal):
    rm = make_manager()
    s = rm.state
    assert isinstance(s.timestamp, datetime.datetime)
    assert s.status == "running"
    assert isinstance(s.uptime, float)
    assert isinstance(s.memory_usage, float) and isinstance(s.cpu_usage, float)
    assert (s.active_connections, s.active_positions) == (0, 0)
    assert s.last_error is None
    assert (s.restart_count, s.max_restarts) == (0, 5)
    assert (s.recovery_attempts, s.max_recovery_attempts) == (0, 3)
    assert s.pid == os.getpid()
    assert folded_state(journal)["status"] == "running"


def test_assigning_a_gauge_journals_it_and_folded_fields_are_read_only(make_manager, journal):
    rm = make_manager()
    rm.state.active_connections = 5
    rm.state.active_positions = 2
    rm.set_gauge("open_orders", 12)
    assert rm.state.active_connections == 5
    assert rm.state.open_orders == 12
    assert [(g["name"], g["value"]) for g in events(journal, "gauge")] == [
        ("active_connections", 5.0), ("active_positions", 2.0), ("open_orders", 12.0)]
    on_disk = folded_state(journal)
    assert (on_disk["active_connections"], on_disk["active_positions"]) == (5, 2)
    with pytest.raises(AttributeError):
        rm.state.status = "running"
    with pytest.raises(AttributeError):
        rm.state.restart_count = 0
    with pytest.raises(TypeError):
        rm.state.active_connections = "five"
    with pytest.raises(AttributeError):
        rm.state.never_set
    assert rm.state.to_dict()["active_connections"] == 5


def test_a_ring_carries_gauges_when_asked_and_a_bad_size_is_refused(make_manager, journal):
    rm = make_manager(journal_ring_bytes=1 << 20)
    assert rm.options["journal_ring_bytes"] == 1 << 20
    ring = journal / "app" / "RING"
    assert ring.is_file() and not ring.is_symlink()
    assert ring.stat().st_mode & 0o777 == 0o600
    for i in range(500):
        rm.set_gauge("open_orders", i)
    # The tool reads the live ring as well as the database.
    assert events(journal, "gauge")[-1]["value"] == 499.0
    rm.close()
    assert folded_state(journal)["gauges"]["open_orders"] == 499
    for bad in (1000, 256, -1):
        with pytest.raises((ValueError, OverflowError, TypeError)):
            make_manager(journal_ring_bytes=bad, stream="bad")


def test_save_state_writes_the_seed_file_atomically_owner_only(make_manager, tmp_path):
    rm = make_manager()
    rm.state.active_connections = 3
    path = tmp_path / "system_state.json"
    path.unlink(missing_ok=True)
    rm._save_state()
    saved = json.loads(path.read_text())
    assert list(saved)[:12] == ["timestamp", "status", "uptime", "memory_usage", "cpu_usage",
                                "active_connections", "active_positions", "last_error",
                                "restart_count", "max_restarts", "recovery_attempts",
                                "max_recovery_attempts"]
    assert saved["active_connections"] == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("system_state.json.")]


def test_heartbeat_and_report_error(make_manager, journal):
    rm = make_manager()
    rm.heartbeat()
    try:
        {}["missing"]
    except KeyError as e:
        rm.report_error("lookup", e)
    [error] = events(journal, "error")
    assert (error["context"], error["exception_type"]) == ("lookup", "KeyError")


def test_restart_application_reexecutes_the_script(tmp_path):
    out = run_python(
        """
        import os, sys, blackbox
        rm = blackbox.CrashRecoveryManager(journal_dir="j", restart_delay=0)
        if rm.state.restart_count == 0:
            print("first run", os.getpid(), sys.argv[1:])
            rm.restart_application()
            print("not reached")
        print("second run", os.getpid(), rm.state.restart_count)
        """,
        cwd=tmp_path,
        check_rc=0,
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("first run")
    assert lines[-1].startswith("second run") and lines[-1].endswith(" 1")
    assert "not reached" not in out.stdout
    [restart] = events(tmp_path / "j", "restart")
    assert restart["reason"] == "requested"


def test_closed_manager_raises(make_manager):
    rm = make_manager()
    rm.close()
    assert rm.closed
    with pytest.raises(RuntimeError):
        rm.set_gauge("x", 1)


def test_two_managers_alive_at_once_share_one_journal(make_manager, journal):
    first = make_manager()
    first.state.active_connections = 5
    first._save_state()
    second = make_manager()
    assert second.shares_journal_with(first)
    assert second.state.active_connections == 5
    for i in range(50):
        first.set_gauge("first", i)
        second.set_gauge("second", i)
    gauges = events(journal, "gauge")
    assert [g["value"] for g in gauges if g["name"] == "first"] == list(range(50))
    assert [g["value"] for g in gauges if g["name"] == "second"] == list(range(50))
    seqs = [e["seq"] for e in events(journal)]
    assert seqs == list(range(1, len(seqs) + 1))
    first.close()  # the other still holds the journal
    second.set_gauge("after", 1)
    assert second.state.after == 1
    assert events(journal, "lifecycle")[-1]["phase"] == "running"
    second.close()
    assert events(journal, "lifecycle")[-1]["phase"] == "stopped"


def test_managers_one_after_another_each_see_the_previous_state(make_manager, journal):
    first = make_manager()
    first.state.active_positions = 4
    first.close()
    second = make_manager()
    assert first.closed and not second.shares_journal_with(first)
    assert second.state.active_positions == 0  # a new run clears the per-run gauges
    assert second.state.restart_count == 0     # the first one stopped cleanly
    phases = [e["phase"] for e in events(journal, "lifecycle")]
    assert phases == ["starting", "running", "stopped", "starting", "running"]
    assert folded_state(journal)["gauges"] == {}


def test_managers_wait_for_each_other_without_holding_the_gil(tmp_path):
    # Thread B holds the manager's recovery lock inside a callback that waits
    # for thread C; the main thread then waits for that lock. Had the main
    # thread kept the GIL while waiting, C could never run: a deadlock (the
    # child's timeout turns it into a failure).
    run_python(
        """
        import threading, time, blackbox
        rm = blackbox.CrashRecoveryManager(journal_dir="j", handle_signals=False)
        in_callback = threading.Event()
        release = threading.Event()
        def slow_reconnect():
            in_callback.set()
            assert release.wait(30)
        rm.register_recovery_callback(slow_reconnect)
        b = threading.Thread(target=rm._attempt_recovery)
        b.start()
        assert in_callback.wait(30)
        c = threading.Thread(target=lambda: (time.sleep(0.2), release.set()))
        c.start()
        rm._attempt_recovery()   # blocks until B is done
        b.join(); c.join()
        print("ok")
        """,
        cwd=tmp_path,
        timeout=60,
        check_rc=0,
    )


def test_sigterm_runs_the_cleanup_callbacks_and_exits_0(tmp_path):
    run_python(
        """
        import os, signal, time, blackbox
        rm = blackbox.CrashRecoveryManager(journal_dir="j")
        def close_all_positions():
            open("closed", "w").write("yes")
        rm.register_cleanup_callback(close_all_positions)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        print("not reached")
        """,
        cwd=tmp_path,
        check_rc=0,
    )
    assert (tmp_path / "closed").read_text() == "yes"
    [callback] = events(tmp_path / "j", "callback")
    assert (callback["kind"], callback["name"], callback["ok"]) == (
        "cleanup", "close_all_positions", True)
    assert events(tmp_path / "j", "lifecycle")[-1]["phase"] == "stopped"


def test_ctrl_c_reaches_the_application_with_on_shutdown_request(tmp_path):
    out = run_python(
        """
        import os, signal, time, blackbox
        rm = blackbox.CrashRecoveryManager(journal_dir="j")
        requests = []
        rm.on_shutdown_request(requests.append)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(300):
                time.sleep(0.1)
            print("no interrupt")
        except KeyboardInterrupt:
            print("KeyboardInterrupt", requests)
            rm.graceful_shutdown()
        """,
        cwd=tmp_path,
        check_rc=0,
    )
    assert f"KeyboardInterrupt [{int(__import__('signal').SIGINT)}]" in out.stdout
    assert events(tmp_path / "j", "lifecycle")[-1]["phase"] == "stopped"


def test_help_reads_like_the_header():
    doc = blackbox.CrashRecoveryManager.__doc__
    for word in ("journal_dir", "max_recovery_attempts", "handle_signals", "capture_crashes",
                 "share"):
        assert word in doc, word
    for name in ("exception_handler", "register_recovery_callback", "register_cleanup_callback",
                 "start_health_monitoring", "get_system_info", "graceful_shutdown",
                 "restart_application", "_attempt_recovery", "_save_state", "set_gauge",
                 "heartbeat", "on_shutdown_request"):
        assert getattr(blackbox.CrashRecoveryManager, name).__doc__, name
    assert "sys.exit" in blackbox.CrashRecoveryManager.graceful_shutdown.__doc__
    package = os.path.dirname(blackbox.__file__)
    assert os.path.isfile(os.path.join(package, "__init__.pyi"))
    assert os.path.isfile(os.path.join(package, "py.typed"))


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3") or "BLACKBOX_BUILD_DIR" not in os.environ,
                    reason="needs Debian's /usr/bin/python3 and the build tree")
def test_install_puts_the_package_where_debian_python_finds_it(tmp_path):
    subprocess.run([os.environ.get("CMAKE_COMMAND", "cmake"), "--install",
                    os.environ["BLACKBOX_BUILD_DIR"], "--component", "python",
                    "--prefix", "/usr/local"],
                   env=dict(os.environ, DESTDIR=str(tmp_path)), check=True,
                   capture_output=True, timeout=120)
    # Where Debian's interpreter looks for /usr/local packages, inside DESTDIR.
    out = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import sys; print('\\n'.join(p for p in sys.path if p.startswith('/usr/local/')))"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    found = [p for p in out.stdout.split() if (tmp_path / p.lstrip("/") / "blackbox").is_dir()]
    assert found, out.stdout
    check = subprocess.run(
        ["/usr/bin/python3", "-c", "import blackbox, sys; print(blackbox.__file__)"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                             "PYTHONPATH": str(tmp_path / found[0].lstrip("/"))})
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(tmp_path))


def test_imports_in_the_interpreter_cmake_found_and_in_debians():
    interpreters = {os.environ.get("BLACKBOX_CMAKE_PYTHON"), "/usr/bin/python3", sys.executable}
    for py in sorted(p for p in interpreters if p and os.path.exists(p)):
        out = subprocess.run([py, "-c", "import blackbox; print(blackbox._core.__file__)"],
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=os.path.dirname(
                                 os.path.dirname(blackbox.__file__))))
        assert out.returncode == 0, (py, out.stderr)
