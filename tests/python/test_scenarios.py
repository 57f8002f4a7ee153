"""The original system's own test script (tests/tools/test_crash_recovery.py),
scenario by scenario, on blackbox: basic recovery with callbacks, health
monitoring, state persistence across two managers, memory pressure, three
threads with one failing. Where the original printed, these check the
journal with the `blackbox` tool."""
import json
import threading
import time

import pytest

from conftest import events, folded_state


def test_basic_recovery(make_manager, journal):
    recovery_manager = make_manager()
    recovery_called = []

    def test_recovery_callback():
        recovery_called.append(True)

    recovery_manager.register_recovery_callback(test_recovery_callback)
    with pytest.raises(ValueError):
        with recovery_manager.exception_handler("test_operation"):
            raise ValueError("Test exception")
    assert recovery_called == [True]
    assert recovery_manager.state.last_error == "Test exception"
    state = folded_state(journal)
    assert state["last_error"] == "Test exception"
    assert state["status"] == "running"  # the recovery succeeded
    [error] = events(journal, "error")
    assert (error["context"], error["exception_type"]) == ("test_operation", "ValueError")
    [callback] = events(journal, "callback")
    assert (callback["name"], callback["ok"]) == ("test_recovery_callback", True)


def test_health_monitoring(make_manager, journal):
    recovery_manager = make_manager(health_check_interval=0.1)
    recovery_manager.start_health_monitoring()
    deadline = time.monotonic() + 30
    while not events(journal, "health") and time.monotonic() < deadline:
        time.sleep(0.05)
    info = recovery_manager.get_system_info()
    assert info["memory_usage_mb"] > 0
    assert info["status"] == "running"
    [sample, *_] = events(journal, "health")
    assert sample["rss_bytes"] > 0
    assert folded_state(journal)["memory_usage"] > 0


def test_state_persistence(make_manager, journal, tmp_path):
    state_file = str(tmp_path / "test_state.json")
    recovery_manager = make_manager(state_file=state_file)
    recovery_manager.state.active_connections = 5
    recovery_manager._save_state()
    # A second manager while the first is alive, as the original test does.
    new_manager = make_manager(state_file=state_file)
    assert new_manager.state.active_connections == 5
    with open(state_file) as f:
        assert json.load(f)["active_connections"] == 5
    assert folded_state(journal)["active_connections"] == 5


def test_memory_pressure(make_manager, journal):
    recovery_manager = make_manager()
    before = recovery_manager.get_system_info()["memory_usage_mb"]
    large_data = [b"x" * (1 << 20) for _ in range(64)]  # 64 MB, every page touched
    after = recovery_manager.get_system_info()["memory_usage_mb"]
    assert after > before + 32
    recovery_manager.graceful_shutdown()  # its last health sample is journaled
    del large_data
    samples = events(journal, "health")
    assert samples[-1]["rss_bytes"] > (before + 32) * (1 << 20)


def test_concurrent_operations(make_manager, journal):
    recovery_manager = make_manager()
    recovered = []
    recovery_manager.register_recovery_callback(lambda: recovered.append(True))
    results = {}

    def worker(worker_id):
        try:
            with recovery_manager.exception_handler(f"worker_{worker_id}"):
                if worker_id == 1:
                    raise RuntimeError(f"Worker {worker_id} failed")
                recovery_manager.set_gauge(f"worker_{worker_id}_done", 1)
            results[worker_id] = "ok"
        except RuntimeError:
            results[worker_id] = "failed"

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: "ok", 1: "failed", 2: "ok"}
    assert recovered == [True]
    [error] = events(journal, "error")
    assert (error["context"], error["message"]) == ("worker_1", "Worker 1 failed")
    assert error["frames"][0].endswith("in worker")
    assert sorted(g["name"] for g in events(journal, "gauge")) == [
        "worker_0_done", "worker_2_done"]
