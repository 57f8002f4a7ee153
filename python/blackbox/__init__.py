"""blackbox: the crash recovery manager, with the original Python API.

The names, arguments and defaults of the original ``app.util.crash_recovery``
module, on blackbox's C++ recovery manager: every error, crash, health sample,
restart and callback result is an event in the journal, and ``state`` is
folded from it. Switching is one import line::

    from blackbox import get_recovery_manager   # was: from app.util.crash_recovery import ...

    recovery_manager = get_recovery_manager()
    with recovery_manager.exception_handler("trading_operation"):
        execute_trade()

What differs from the original (each is the original being wrong, or the
journal doing more):

- ``graceful_shutdown()`` runs the cleanup callbacks and records the stop, and
  then returns: it does not call ``sys.exit(0)``. Exit yourself if you want to.
  SIGINT/SIGTERM still shut down and exit 0 (``handle_signals=True``).
- ``state_file`` is written atomically (temp file, fsync, rename, mode 0600)
  after each health check, at shutdown and by ``_save_state()``; it is a copy
  for old readers, the journal is the truth.
- ``get_system_info()["cpu_percent"]`` is measured since the previous call (the
  first call: since the manager started), never a constant 0.
- ``state.recovery_attempts`` counts consecutive *failed* recoveries (a
  successful one resets it), as the fold does.
- Managers opened in one process on the same journal (root and stream) share
  one C++ manager: one open journal, one state, one set of callbacks. The
  options of the first one apply while any of them is open.
"""

from __future__ import annotations

import atexit
import datetime as _datetime
import faulthandler as _faulthandler
import os as _os
import stat as _stat
import json as _json
import sys as _sys
import threading as _threading
from typing import Any, Callable, Dict, List, Optional

from . import _core

__all__ = [
    "CrashRecoveryManager",
    "SystemState",
    "get_recovery_manager",
    "initialize_recovery_manager",
    "prepare_thread",
    "RECOVERY_EXHAUSTED_EXIT_CODE",
]

#: Exit status of a process that gave up after ``max_recovery_attempts``
#: consecutive failed recoveries, or after ``max_restarts`` restarts.
RECOVERY_EXHAUSTED_EXIT_CODE: int = _core.RECOVERY_EXHAUSTED_EXIT_CODE


def _type_name(exc_type: type) -> str:
    """``ValueError`` for builtins, ``module.Class`` otherwise."""
    module = getattr(exc_type, "__module__", "builtins")
    name = getattr(exc_type, "__qualname__", exc_type.__name__)
    return name if module == "builtins" else f"{module}.{name}"


def _frames(tb: Any) -> List[str]:
    """The frames of a traceback, innermost first, as "file:line in function".

    The traceback's own frames (from the raise up to where it was caught),
    then the callers of the frame that caught it: the whole stack, like a
    native backtrace.
    """
    frames: List[str] = []
    outer = tb.tb_frame.f_back if tb is not None else None
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    frames.reverse()
    while outer is not None:
        code = outer.f_code
        frames.append(f"{code.co_filename}:{outer.f_lineno} in {code.co_name}")
        outer = outer.f_back
    return frames


class _ExceptionHandler:
    """The context manager of ``CrashRecoveryManager.exception_handler``."""

    __slots__ = ("_core", "_context")

    def __init__(self, core: Any, context: str) -> None:
        self._core = core
        self._context = context

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        # Like the original's `except Exception`: KeyboardInterrupt,
        # SystemExit and GeneratorExit pass through unrecorded.
        if exc_type is None or not issubclass(exc_type, Exception):
            return False
        # The recovery may give up and exit the process: flush what Python buffered.
        for stream in (_sys.stdout, _sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self._core.report_error(self._context, _type_name(exc_type), str(exc), _frames(tb))
        return False  # re-raised by the interpreter, traceback untouched


_GAUGE_FIELDS = ("active_connections", "active_positions")
# Read-only: folded from the journal.
_FOLDED_FIELDS = frozenset(
    (
        "timestamp",
        "status",
        "uptime",
        "memory_usage",
        "cpu_usage",
        "last_error",
        "restart_count",
        "max_restarts",
        "recovery_attempts",
        "max_recovery_attempts",
        "pid",
        "memory_percent",
        "disk_percent",
        "threads",
        "open_fds",
        "gauges",
        "event_count",
        "error_count",
        "crash_count",
        "health_warnings",
        "last_error_detail",
        "last_crash",
        "covered",
        "run_started_ns",
        "timestamp_ns",
    )
)


class SystemState:
    """The original ``SystemState``, read from the journal's fold.

    Every read is the state as of the newest event journaled (the fold of the
    journal plus what this process could not write). The original fields:

    - ``timestamp`` (datetime, local time of the newest event), ``status``
      ("initializing", "running", "error", "recovering", "stopping",
      "stopped", "failed"), ``uptime`` (seconds of this run, as of the newest
      event), ``memory_usage`` (RSS in MB, last health sample), ``cpu_usage``
      (percent of one core, last health sample), ``active_connections``,
      ``active_positions`` (gauges, ints), ``last_error`` (message or None),
      ``restart_count`` (unclean and requested restarts over the journal's
      history), ``max_restarts``, ``recovery_attempts`` (consecutive failed
      recoveries), ``max_recovery_attempts``.
    - More from the journal: ``pid``, ``memory_percent``, ``disk_percent``,
      ``threads``, ``open_fds``, ``gauges`` (dict), ``event_count``,
      ``error_count``, ``crash_count``, ``health_warnings``,
      ``last_error_detail`` and ``last_crash`` (dicts or None).

    Assigning a gauge journals it, like ``set_gauge``::

        rm.state.active_connections = 5      # == rm.set_gauge("active_connections", 5)
        rm.state.open_orders = 12            # any other name is a gauge too

    Reading a gauge never set gives 0 for ``active_connections`` and
    ``active_positions``; any other unknown name raises AttributeError. The
    folded fields are read-only.
    """

    __slots__ = ("_core",)

    def __init__(self, core: Any) -> None:
        object.__setattr__(self, "_core", core)

    def _fields(self) -> Dict[str, Any]:
        return self._core.state()

    @property
    def timestamp(self) -> Optional[_datetime.datetime]:
        ns = self._fields()["timestamp_ns"]
        return _datetime.datetime.fromtimestamp(ns / 1e9) if ns else None

    @property
    def active_connections(self) -> int:
        return int(self._fields()["gauges"].get("active_connections", 0))

    @property
    def active_positions(self) -> int:
        return int(self._fields()["gauges"].get("active_positions", 0))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = self._fields()
        if name in fields:
            return fields[name]
        gauges = fields["gauges"]
        if name in gauges:
            return gauges[name]
        raise AttributeError(f"SystemState has no field or gauge {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name == "timestamp" or name in _FOLDED_FIELDS:
            raise AttributeError(
                f"SystemState.{name} is folded from the journal and read-only; "
                "only gauges can be assigned"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"gauge {name} must be a number, not {type(value).__name__}")
        self._core.set_gauge(name, float(value))

    def to_dict(self) -> Dict[str, Any]:
        """The seed's ``system_state.json`` object (same keys first), as a dict."""
        return _json.loads(self._core.state_json(-1))

    def __repr__(self) -> str:
        f = self._fields()
        return (
            f"SystemState(status={f['status']!r}, uptime={f['uptime']:.1f}, "
            f"memory_usage={f['memory_usage']:.1f}, cpu_usage={f['cpu_usage']:.1f}, "
            f"active_connections={self.active_connections}, "
            f"active_positions={self.active_positions}, last_error={f['last_error']!r}, "
            f"restart_count={f['restart_count']}, recovery_attempts={f['recovery_attempts']})"
        )


class CrashRecoveryManager:
    """Exception handling, recovery, health monitoring and crash capture.

    The original constructor and defaults; seconds are numbers::

        CrashRecoveryManager(state_file="system_state.json", max_restarts=5,
                             restart_delay=30, health_check_interval=60)

    Keyword-only, blackbox's ``RecoveryOptions``:

    - ``journal_dir``: the journal root; None -> ``$BLACKBOX_JOURNAL``, else
      ``./blackbox-journal``.
    - ``stream``: this process's stream under the root ("app").
    - ``max_recovery_attempts`` (3): consecutive failed recoveries before the
      process shuts down with status "failed" and exits with
      RECOVERY_EXHAUSTED_EXIT_CODE (70), so that a watchdog restarts it.
    - ``handle_signals`` (True): SIGINT/SIGTERM run ``graceful_shutdown()``
      (cleanup callbacks included) on the manager's thread, then exit 0.
    - ``capture_crashes`` (True): SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT
      (a segfault in a C extension too) are written to a spill file and
      journaled as a crash by the next start; an uncaught Python exception is
      journaled as a crash before the interpreter exits.
    - ``memory_warning_percent`` (80), ``cpu_warning_percent`` (90),
      ``disk_warning_percent`` (90): a health sample past any of them is
      journaled as a warning.
    - ``snapshot_every`` (10000): events between two stored snapshots.
    - ``forecast_horizon`` (600 seconds; 0 turns it off): the health monitor
      journals a ``forecast`` warning when this process's memory, rising, is
      projected to reach what the system could still give it (its RSS plus
      MemAvailable, or ``forecast_memory_limit_bytes`` when not 0), or the
      journal's filesystem to fill up, within this many seconds.
    - ``journal_ring_bytes`` (0, off): a power of two of at least 512 gives
      the stream a ring of buffered events (``<stream>/RING``, 4 MiB is a
      good size): gauges and health samples then cost tens of nanoseconds
      instead of a database write, and still survive a kill -9 of the
      process; a full ring drops buffered events and journals the count.

    Opening the manager folds the journal, journals a crash left by the
    previous run, counts a previous run that did not end cleanly as a restart,
    and journals this run's start. ``state_file=None`` writes no state file.

    Managers opened in one process on the same journal root and stream share
    one native manager (one open journal): a second one sees the first one's
    state and neither loses events; the first one's options apply. A manager
    is closed (its run recorded as stopped) by ``close()``, when the last
    manager object of its journal is gone, or at interpreter exit.
    """

    def __init__(
        self,
        state_file: Optional[str] = "system_state.json",
        max_restarts: int = 5,
        restart_delay: float = 30,
        health_check_interval: float = 60,
        *,
        journal_dir: Optional[str] = None,
        stream: str = "app",
        max_recovery_attempts: int = 3,
        handle_signals: bool = True,
        capture_crashes: bool = True,
        memory_warning_percent: float = 80,
        cpu_warning_percent: float = 90,
        disk_warning_percent: float = 90,
        snapshot_every: int = 10000,
        forecast_horizon: float = 600,
        forecast_memory_limit_bytes: int = 0,
        journal_ring_bytes: int = 0,
    ) -> None:
        self.state_file = state_file
        self.max_restarts = max_restarts
        self.restart_delay = restart_delay
        self.health_check_interval = health_check_interval
        if capture_crashes:
            _before_crash_capture()
        self._core = _core.open(
            journal_dir or "",
            stream,
            state_file or "",
            int(max_restarts),
            float(restart_delay),
            float(health_check_interval),
            int(max_recovery_attempts),
            bool(handle_signals),
            bool(capture_crashes),
            float(memory_warning_percent),
            float(cpu_warning_percent),
            float(disk_warning_percent),
            int(snapshot_every),
            float(forecast_horizon),
            int(forecast_memory_limit_bytes),
            int(journal_ring_bytes),
        )
        self.state = SystemState(self._core)
        _install_excepthook()
        if capture_crashes:
            _chain_faulthandler(_os.path.join(self._core.journal_root(), stream + ".crash"))

    # --- the original API -------------------------------------------------

    def exception_handler(self, context: str = "unknown") -> _ExceptionHandler:
        """A context manager that records an exception raised inside it.

        ``with rm.exception_handler("order_execution"): place_order(o)``

        An ``Exception`` raised in the block is journaled durably (context,
        type name such as ``ValueError``, message, and the Python frames as
        "file:line in function", innermost first), then every recovery
        callback runs (each result journaled), then the same exception is
        re-raised with its traceback intact. KeyboardInterrupt and SystemExit
        pass through unrecorded. After ``max_recovery_attempts`` consecutive
        failed recoveries the process shuts down and exits with status 70.
        """
        return _ExceptionHandler(self._core, context)

    def register_recovery_callback(self, callback: Callable[[], Any]) -> None:
        """Adds a recovery callback, run (in registration order) after each
        recorded exception and by ``_attempt_recovery()``. It is named after
        ``callback.__name__`` in the journal; it fails by raising."""
        self._core.register_recovery_callback(_callable_name(callback), callback)

    def register_cleanup_callback(self, callback: Callable[[], Any]) -> None:
        """Adds a cleanup callback, run (in registration order) by
        ``graceful_shutdown()``, SIGINT and SIGTERM. Named after
        ``callback.__name__``; it fails by raising."""
        self._core.register_cleanup_callback(_callable_name(callback), callback)

    def start_health_monitoring(self) -> None:
        """Samples RSS, CPU %, system memory %, disk % of the journal's
        filesystem, threads and fds every ``health_check_interval`` seconds on
        a native thread (no GIL), journals each sample and rewrites
        ``state_file``. Idempotent."""
        self._core.start_health_monitoring()

    def stop_health_monitoring(self) -> None:
        """Stops the health monitoring thread (not in the original)."""
        self._core.stop_health_monitoring()

    def get_system_info(self) -> Dict[str, Any]:
        """The original dictionary: ``pid``, ``memory_usage_mb``,
        ``cpu_percent`` (this process, percent of one core, since the previous
        call), ``uptime_seconds``, ``status``, ``restart_count``,
        ``recovery_attempts``, ``last_error`` (message or None), plus
        ``memory_percent``, ``disk_percent``, ``threads``, ``open_fds``."""
        return self._core.get_system_info()

    def graceful_shutdown(self) -> None:
        """Runs the cleanup callbacks (each result journaled), journals
        "stopped" durably, stores a snapshot and writes ``state_file``. Runs
        once; later calls return at once. Unlike the original it does NOT call
        ``sys.exit(0)``: the caller decides whether the process ends."""
        self._core.graceful_shutdown()

    def restart_application(self) -> None:
        """Re-executes this program (same interpreter, same arguments) after
        ``restart_delay`` seconds, once cleanup ran. Past ``max_restarts``
        restarts (counted in the journal) it exits with status 70 instead.
        Never returns."""
        for stream in (_sys.stdout, _sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self._core.restart_application()

    def _attempt_recovery(self) -> bool:
        """The original's manual recovery: runs every recovery callback now
        and journals each result. Returns True when all succeeded (or there
        are none)."""
        return self._core.attempt_recovery()

    def _save_state(self) -> None:
        """The original's manual save: writes ``state_file`` now, atomically,
        from the folded state (no-op when ``state_file`` is None). The state
        itself is in the journal already. Raises OSError when it cannot be
        written."""
        path = self._core.options()["state_file"]
        if path:
            self._core.write_state_file(path)

    # --- blackbox's additions ---------------------------------------------

    def set_gauge(self, name: str, value: float) -> None:
        """Journals a gauge (active_connections, active_positions, ...).
        Buffered: survives a crash of the process, costs no fsync."""
        self._core.set_gauge(name, float(value))

    def heartbeat(self) -> None:
        """Liveness for the notify protocol (blackbox-watchdog, systemd):
        once called, WATCHDOG=1 is sent only while heartbeats keep coming, so
        a hung main loop is seen as hung."""
        self._core.heartbeat()

    def on_shutdown_request(self, callback: Optional[Callable[[int], Any]]) -> None:
        """SIGINT/SIGTERM call ``callback(signo)`` on the manager's thread
        instead of shutting down; Ctrl+C (SIGINT) then also raises
        KeyboardInterrupt in the main thread, as without the manager. The
        application then stops and calls ``graceful_shutdown()`` itself.
        None restores the default (shutdown and exit 0)."""
        self._core.on_shutdown_request(callback)

    def report_error(self, context: str, exc: BaseException) -> None:
        """Records ``exc`` (already caught) like ``exception_handler`` does,
        runs the recovery callbacks, and does not re-raise."""
        self._core.report_error(
            context, _type_name(type(exc)), str(exc), _frames(exc.__traceback__)
        )

    @property
    def journal_root(self) -> str:
        """The journal root this manager writes."""
        return self._core.journal_root()

    @property
    def journal_failures(self) -> int:
        """Events that could not be journaled so far (still in ``state``)."""
        return self._core.journal_failures()

    @property
    def options(self) -> Dict[str, Any]:
        """The options in force (the first manager's, when shared)."""
        return self._core.options()

    def shares_journal_with(self, other: "CrashRecoveryManager") -> bool:
        """True when both objects use the same native manager (same journal)."""
        return self._core.same_manager(other._core)

    def close(self) -> None:
        """Lets go of the journal: when no other manager object of this
        process shares it, the run is recorded as stopped (without running
        cleanup callbacks) and the journal is closed. Later calls on this
        object raise RuntimeError."""
        self._core.close()

    @property
    def closed(self) -> bool:
        return self._core.closed

    def __enter__(self) -> "CrashRecoveryManager":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    @staticmethod
    def prepare_thread() -> None:
        """See :func:`blackbox.prepare_thread`."""
        _core.prepare_thread()


def _callable_name(callback: Callable[..., Any]) -> str:
    if not callable(callback):
        raise TypeError(f"callback must be callable, not {type(callback).__name__}")
    return getattr(callback, "__name__", None) or type(callback).__name__


def prepare_thread() -> None:
    """Gives the calling thread an alternate signal stack, so that a native
    stack overflow on it is captured like any other crash. Call it first
    thing in threads that run native code which may overflow."""
    _core.prepare_thread()


# --- the process-wide manager ------------------------------------------------

_global_lock = _threading.Lock()
_recovery_manager: Optional[CrashRecoveryManager] = None


def get_recovery_manager() -> CrashRecoveryManager:
    """The process-wide manager, created with the default options on first use."""
    global _recovery_manager
    with _global_lock:
        if _recovery_manager is None or _recovery_manager.closed:
            _recovery_manager = CrashRecoveryManager()
        return _recovery_manager


def initialize_recovery_manager(**kwargs: Any) -> CrashRecoveryManager:
    """Creates the process-wide manager with these keyword arguments (those of
    ``CrashRecoveryManager``) and returns it, as the original did. A previous
    process-wide manager is closed first, so that these options apply (unless
    another manager object still shares its journal)."""
    global _recovery_manager
    with _global_lock:
        if _recovery_manager is not None:
            _recovery_manager.close()
        _recovery_manager = CrashRecoveryManager(**kwargs)
        return _recovery_manager


# --- uncaught exceptions and exit ---------------------------------------------

_previous_excepthook: Optional[Callable[..., Any]] = None


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    # An uncaught exception ends the interpreter: a crash, journaled durably
    # before the traceback is printed. KeyboardInterrupt is not a crash.
    try:
        if not issubclass(exc_type, KeyboardInterrupt):
            _core.report_fatal_error_all(_type_name(exc_type), str(exc), _frames(tb))
    finally:
        hook = _previous_excepthook or _sys.__excepthook__
        hook(exc_type, exc, tb)


def _install_excepthook() -> None:
    global _previous_excepthook
    if _sys.excepthook is _excepthook:
        return
    _previous_excepthook = _sys.excepthook
    _sys.excepthook = _excepthook


# --- the Python stack of a native crash --------------------------------------
#
# faulthandler is chained in front of the native crash handler: on SIGSEGV &c.
# it writes the Python stack of the crashing thread into the manager's crash
# spill, then re-raises to the handler that was there before it (the native
# one, which writes its record after it and re-raises with the default
# action). The next start journals both as one crash record: the native
# frames, then the Python ones.

_fault_fd: Optional[int] = None


def _before_crash_capture() -> None:
    # A faulthandler enabled before the native handlers are installed would,
    # once disabled, put back what it saw first: disable it now, re-enabled
    # (on the spill) by _chain_faulthandler.
    if _fault_fd is None and _faulthandler.is_enabled():
        _faulthandler.disable()


def _chain_faulthandler(spill: str) -> None:
    global _fault_fd
    if _fault_fd is not None:
        return
    try:
        st = _os.lstat(spill)
        if not _stat.S_ISREG(st.st_mode) or st.st_uid != _os.geteuid():
            return
        fd = _os.open(spill, _os.O_WRONLY | _os.O_APPEND | _os.O_NOFOLLOW | _os.O_CLOEXEC)
    except OSError:
        return  # no spill: the native capture is off too
    _faulthandler.enable(file=fd, all_threads=False)
    _fault_fd = fd


@atexit.register
def _close_all_at_exit() -> None:
    # Before the interpreter tears down: every manager records its stop (or
    # nothing, after an uncaught exception) while Python still runs callbacks.
    global _fault_fd
    if _fault_fd is not None:
        _faulthandler.disable()  # puts the native handler back, which the close removes
        _os.close(_fault_fd)
        _fault_fd = None
    _core.close_all()
