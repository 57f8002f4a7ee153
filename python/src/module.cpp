// blackbox._core: the recovery manager (blackbox::RecoveryManager) for
// Python. blackbox/__init__.py puts the original Python API's names on top;
// everything that journals, folds or captures crashes is the C++ library's.
//
// The GIL:
//  - Every call into the manager runs with the GIL released: appends may
//    write and fsync, and the manager's mutexes are then never waited for
//    while the GIL is held (a callback needs the GIL while the manager holds
//    its recovery or shutdown lock).
//  - A Python callback runs with the GIL held (PyCallable acquires it) on
//    whatever thread the manager runs it; a Python exception it raises
//    becomes a C++ exception, so the manager counts a failed callback.
//  - Python objects the C++ side holds are released with the GIL held.
//
// One open journal per process and stream: RocksDB lets one writer open a
// database, and a second RecoveryManager on the same journal would work from
// memory. So managers opened on the same (journal root, stream) share one
// RecoveryManager (Shared below): the second sees the first one's state and
// events, and their events go to one journal in one order. The first one's
// options apply while any of them is open.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/recovery.h"
#include "blackbox/state_io.h"

namespace py = pybind11;

namespace blackbox {

// A Python exception raised by a callback, as the C++ manager sees it. Its
// what() is "ValueError: message", so the callback's journaled error reads
// "blackbox::PythonException: ValueError: message".
class PythonException : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace python {
namespace {

// "ValueError" for builtins, "module.Class" for the rest.
std::string TypeName(const py::handle& type) {
  std::string name = py::str(type.attr("__qualname__"));
  std::string module = py::str(type.attr("__module__"));
  return module == "builtins" ? name : module + "." + name;
}

// A Python callable that C++ can copy, hold and call from any thread.
class PyCallable {
 public:
  explicit PyCallable(py::object fn) : fn_(new py::object(std::move(fn)), Release) {}
  template <class... Args>
  void operator()(Args... args) const {
    py::gil_scoped_acquire gil;
    try {
      (*fn_)(args...);
    } catch (py::error_already_set& e) {
      std::string text = TypeName(e.type());
      std::string message = py::str(e.value());
      if (!message.empty()) text += ": " + message;
      throw PythonException(text);
    }
  }

 private:
  static void Release(py::object* fn) {
    if (!Py_IsInitialized()) return;  // the interpreter is gone: leak rather than crash
    py::gil_scoped_acquire gil;
    delete fn;
  }
  std::shared_ptr<py::object> fn_;
};

// Destroys a manager with the GIL released: its threads may be running a
// Python callback, which needs the GIL to finish.
void DestroyManager(RecoveryManager* m) {
  if (Py_IsInitialized() && PyGILState_Check()) {
    py::gil_scoped_release nogil;
    delete m;
  } else {
    delete m;
  }
}

// The options and the manager of one (journal root, stream) in this process.
struct Shared {
  RecoveryOptions options;
  std::string key;
  std::mutex mu;  // guards manager
  std::shared_ptr<RecoveryManager> manager;

  // The manager, or RuntimeError once closed. Callers keep the copy for the
  // whole call, so a concurrent close() never frees it under them.
  std::shared_ptr<RecoveryManager> Get() {
    std::lock_guard lock(mu);
    if (!manager) throw std::runtime_error("blackbox: this recovery manager is closed");
    return manager;
  }
  void Close() {
    std::shared_ptr<RecoveryManager> m;
    {
      std::lock_guard lock(mu);
      m = std::move(manager);
    }
    m.reset();  // the journal closes here unless a call still runs
  }
};

std::mutex g_registry_mu;
std::map<std::string, std::weak_ptr<Shared>> g_registry;

std::string ResolvedRoot(const std::string& configured) {
  std::string root = configured;
  if (root.empty()) {
    const char* env = std::getenv("BLACKBOX_JOURNAL");
    root = env != nullptr && *env != '\0' ? std::string(env) : std::string(kDefaultJournalRoot);
  }
  std::error_code ec;
  auto path = std::filesystem::weakly_canonical(std::filesystem::absolute(root), ec);
  return ec ? std::filesystem::absolute(root).lexically_normal().string() : path.string();
}

std::chrono::milliseconds Seconds(double s, const char* name) {
  if (!std::isfinite(s) || s < 0) {
    throw py::value_error(std::string(name) + " must be a finite number of seconds >= 0");
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(s * 1000.0)));
}

// What a Python manager object holds.
class Handle {
 public:
  explicit Handle(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  std::shared_ptr<RecoveryManager> manager() const {
    if (!shared_) throw std::runtime_error("blackbox: this recovery manager is closed");
    return shared_->Get();
  }
  Shared& shared() const { return *shared_; }
  // Lets go of the shared manager: the last handle's close destroys it.
  void Close() {
    std::shared_ptr<Shared> s = std::move(shared_);
    if (s) {
      py::gil_scoped_release nogil;
      s.reset();
    }
  }
  bool closed() const { return !shared_ || !shared_->manager; }

 private:
  std::shared_ptr<Shared> shared_;
};

Handle Open(const std::string& journal_dir, const std::string& stream,
            const std::string& state_file, int max_restarts, double restart_delay,
            double health_check_interval, int max_recovery_attempts, bool handle_signals,
            bool capture_crashes, double memory_warning_percent, double cpu_warning_percent,
            double disk_warning_percent, uint64_t snapshot_every, double forecast_horizon,
            uint64_t forecast_memory_limit_bytes, uint64_t journal_ring_bytes) {
  if (stream.empty() || stream.find('/') != std::string::npos || stream == "." || stream == "..") {
    throw py::value_error("stream must be a plain name, not '" + stream + "'");
  }
  if (max_restarts < 0) throw py::value_error("max_restarts must be >= 0");
  if (max_recovery_attempts < 1) throw py::value_error("max_recovery_attempts must be >= 1");
  RecoveryOptions o;
  o.journal_dir = journal_dir;
  o.stream = stream;
  o.state_file = state_file;
  o.max_restarts = max_restarts;
  o.restart_delay = Seconds(restart_delay, "restart_delay");
  o.health_check_interval = Seconds(health_check_interval, "health_check_interval");
  if (o.health_check_interval.count() == 0) {
    throw py::value_error("health_check_interval must be at least 0.001 seconds");
  }
  o.max_recovery_attempts = max_recovery_attempts;
  o.handle_signals = handle_signals;
  o.capture_crashes = capture_crashes;
  o.memory_warning_percent = memory_warning_percent;
  o.cpu_warning_percent = cpu_warning_percent;
  o.disk_warning_percent = disk_warning_percent;
  o.snapshot_every = snapshot_every == 0 ? 1 : snapshot_every;
  if (!std::isfinite(forecast_horizon) || forecast_horizon < 0) {
    throw py::value_error("forecast_horizon must be a finite number of seconds >= 0");
  }
  o.forecast_horizon = std::chrono::seconds(std::llround(forecast_horizon));
  o.forecast_memory_limit_bytes = forecast_memory_limit_bytes;
  if (journal_ring_bytes != 0 &&
      (journal_ring_bytes < 512 || (journal_ring_bytes & (journal_ring_bytes - 1)) != 0)) {
    throw py::value_error("journal_ring_bytes must be 0 or a power of two of at least 512");
  }
  o.journal_ring_bytes = journal_ring_bytes;

  std::string key = ResolvedRoot(journal_dir) + '\0' + stream;
  py::gil_scoped_release nogil;
  std::lock_guard lock(g_registry_mu);
  if (auto it = g_registry.find(key); it != g_registry.end()) {
    if (std::shared_ptr<Shared> s = it->second.lock()) {
      std::lock_guard m(s->mu);
      if (s->manager) return Handle(std::move(s));
    }
  }
  auto s = std::make_shared<Shared>();
  s->options = o;
  s->key = key;
  s->manager = std::shared_ptr<RecoveryManager>(new RecoveryManager(std::move(o)), DestroyManager);
  g_registry[key] = s;
  return Handle(std::move(s));
}

// Every manager still open in this process.
std::vector<std::shared_ptr<Shared>> OpenManagers() {
  std::lock_guard lock(g_registry_mu);
  std::vector<std::shared_ptr<Shared>> out;
  for (auto it = g_registry.begin(); it != g_registry.end();) {
    if (std::shared_ptr<Shared> s = it->second.lock()) {
      out.push_back(std::move(s));
      ++it;
    } else {
      it = g_registry.erase(it);
    }
  }
  return out;
}

py::object ErrorDict(const std::optional<ErrorInfo>& e) {
  if (!e) return py::none();
  py::dict d;
  d["time_ns"] = e->time_ns;
  d["context"] = e->context;
  d["exception_type"] = e->exception_type;
  d["message"] = e->message;
  return d;
}

py::object CrashDict(const std::optional<CrashInfo>& c) {
  if (!c) return py::none();
  py::dict d;
  d["time_ns"] = c->time_ns;
  d["stream"] = c->stream;
  d["origin"] = std::string(CrashOriginName(c->origin));
  d["signal"] = c->signal;
  d["crashed_pid"] = c->crashed_pid;
  d["exit_code"] = c->exit_code;
  d["exception_type"] = c->exception_type;
  d["exception_message"] = c->exception_message;
  d["first_frame"] = c->first_frame;
  return d;
}

py::dict StateDict(const SystemState& s) {
  py::dict d;
  d["timestamp_ns"] = s.timestamp_ns;
  d["status"] = std::string(SeedStatusName(s.status));
  d["pid"] = s.pid;
  d["run_started_ns"] = s.run_started_ns;
  d["uptime"] = s.uptime_seconds();
  d["memory_usage"] = s.memory_usage_mb;
  d["cpu_usage"] = s.cpu_usage;
  d["memory_percent"] = s.memory_percent;
  d["disk_percent"] = s.disk_percent;
  d["threads"] = s.threads;
  d["open_fds"] = s.open_fds;
  d["last_error_detail"] = ErrorDict(s.last_error);
  d["last_error"] = s.last_error ? py::object(py::str(s.last_error->message)) : py::none();
  d["restart_count"] = s.restart_count;
  d["max_restarts"] = s.max_restarts;
  d["recovery_attempts"] = s.recovery_attempts;
  d["max_recovery_attempts"] = s.max_recovery_attempts;
  py::dict gauges;
  for (const auto& [name, value] : s.gauges) gauges[py::str(name)] = value;
  d["gauges"] = gauges;
  d["event_count"] = s.event_count;
  d["error_count"] = s.error_count;
  d["crash_count"] = s.crash_count;
  d["health_warnings"] = s.health_warnings;
  d["last_crash"] = CrashDict(s.last_crash);
  py::dict covered;
  for (const auto& [stream, seq] : s.covered) covered[py::str(stream)] = seq;
  d["covered"] = covered;
  return d;
}

py::dict InfoDict(const SystemInfo& i) {
  py::dict d;
  d["pid"] = i.pid;
  d["memory_usage_mb"] = i.memory_usage_mb;
  d["cpu_percent"] = i.cpu_percent;
  d["uptime_seconds"] = i.uptime_seconds;
  d["status"] = i.status;
  d["restart_count"] = i.restart_count;
  d["recovery_attempts"] = i.recovery_attempts;
  d["last_error"] = i.last_error.empty() ? py::none() : py::object(py::str(i.last_error));
  d["memory_percent"] = i.memory_percent;
  d["disk_percent"] = i.disk_percent;
  d["threads"] = i.threads;
  d["open_fds"] = i.open_fds;
  return d;
}

py::dict OptionsDict(const RecoveryOptions& o) {
  py::dict d;
  d["journal_dir"] = o.journal_dir;
  d["stream"] = o.stream;
  d["state_file"] = o.state_file;
  d["max_restarts"] = o.max_restarts;
  d["restart_delay"] = static_cast<double>(o.restart_delay.count()) / 1000.0;
  d["health_check_interval"] = static_cast<double>(o.health_check_interval.count()) / 1000.0;
  d["max_recovery_attempts"] = o.max_recovery_attempts;
  d["handle_signals"] = o.handle_signals;
  d["capture_crashes"] = o.capture_crashes;
  d["memory_warning_percent"] = o.memory_warning_percent;
  d["cpu_warning_percent"] = o.cpu_warning_percent;
  d["disk_warning_percent"] = o.disk_warning_percent;
  d["snapshot_every"] = o.snapshot_every;
  d["forecast_horizon"] = static_cast<double>(o.forecast_horizon.count());
  d["forecast_memory_limit_bytes"] = o.forecast_memory_limit_bytes;
  d["journal_ring_bytes"] = o.journal_ring_bytes;
  return d;
}

}  // namespace
}  // namespace python
}  // namespace blackbox

PYBIND11_MODULE(_core, m) {
  using namespace blackbox;
  using namespace blackbox::python;
  m.doc() =
      "The native half of the blackbox module: blackbox::RecoveryManager. Use the names in "
      "`blackbox` (CrashRecoveryManager, get_recovery_manager, ...), not these.";

  py::class_<Handle>(m, "Manager")
      .def("report_error",
           [](Handle& h, const std::string& context, std::string type, std::string message,
              std::vector<std::string> frames) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->report_error(context, {std::move(type), std::move(message), std::move(frames)});
           })
      .def("report_fatal_error",
           [](Handle& h, std::string type, std::string message, std::vector<std::string> frames) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->report_fatal_error({std::move(type), std::move(message), std::move(frames)});
           })
      .def("register_recovery_callback",
           [](Handle& h, std::string name, py::object fn) {
             auto rm = h.manager();
             std::function<void()> cb = PyCallable(std::move(fn));
             py::gil_scoped_release nogil;
             rm->register_recovery_callback(std::move(name), std::move(cb));
           })
      .def("register_cleanup_callback",
           [](Handle& h, std::string name, py::object fn) {
             auto rm = h.manager();
             std::function<void()> cb = PyCallable(std::move(fn));
             py::gil_scoped_release nogil;
             rm->register_cleanup_callback(std::move(name), std::move(cb));
           })
      .def("on_shutdown_request",
           [](Handle& h, py::object fn) {
             auto rm = h.manager();
             std::function<void(int)> cb;
             if (!fn.is_none()) {
               // fn(signo) on the manager's signal thread; Ctrl+C then also
               // raises KeyboardInterrupt in the main thread, as Python does.
               PyCallable call(std::move(fn));
               cb = [call](int signo) {
                 try {
                   call(signo);
                 } catch (const PythonException&) {
                 }
                 if (signo == SIGINT) {
                   py::gil_scoped_acquire gil;
                   PyErr_SetInterruptEx(SIGINT);
                 }
               };
             }
             py::gil_scoped_release nogil;
             rm->on_shutdown_request(std::move(cb));
           })
      .def("attempt_recovery",
           [](Handle& h) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             return rm->attempt_recovery();
           })
      .def("start_health_monitoring",
           [](Handle& h) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->start_health_monitoring();
           })
      .def("stop_health_monitoring",
           [](Handle& h) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->stop_health_monitoring();
           })
      .def("set_gauge",
           [](Handle& h, const std::string& name, double value) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->set_gauge(name, value);
           })
      .def("heartbeat", [](Handle& h) { h.manager()->heartbeat(); })
      .def("state",
           [](Handle& h) {
             auto rm = h.manager();
             SystemState s;
             {
               py::gil_scoped_release nogil;
               s = rm->state();
             }
             return StateDict(s);
           })
      .def(
          "state_json",
          [](Handle& h, int indent) {
            auto rm = h.manager();
            py::gil_scoped_release nogil;
            return SystemStateJson(rm->state(), indent);
          },
          py::arg("indent") = -1)
      .def("get_system_info",
           [](Handle& h) {
             auto rm = h.manager();
             SystemInfo info;
             {
               py::gil_scoped_release nogil;
               info = rm->get_system_info();
             }
             return InfoDict(info);
           })
      .def("graceful_shutdown",
           [](Handle& h) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->graceful_shutdown();
           })
      .def("restart_application",
           [](Handle& h) {
             auto rm = h.manager();
             py::gil_scoped_release nogil;
             rm->restart_application();
           })
      .def("write_state_file",
           [](Handle& h, const std::string& path) {
             auto rm = h.manager();
             Status st;
             {
               py::gil_scoped_release nogil;
               st = WriteStateFileAtomically(path, rm->state());
             }
             if (!st.ok()) {
               PyErr_SetString(PyExc_OSError,
                               ("cannot write " + path + ": " + st.ToString()).c_str());
               throw py::error_already_set();
             }
           })
      .def("journal_failures", [](Handle& h) { return h.manager()->journal_failures(); })
      .def("journal_root", [](Handle& h) { return h.manager()->journal_root(); })
      .def("options", [](Handle& h) { return OptionsDict(h.shared().options); })
      .def("same_manager",
           [](Handle& h, Handle& other) {
             return !h.closed() && !other.closed() && &h.shared() == &other.shared();
           })
      .def("close", &Handle::Close)
      .def_property_readonly("closed", &Handle::closed);

  m.def("open", &Open, py::arg("journal_dir"), py::arg("stream"), py::arg("state_file"),
        py::arg("max_restarts"), py::arg("restart_delay"), py::arg("health_check_interval"),
        py::arg("max_recovery_attempts"), py::arg("handle_signals"), py::arg("capture_crashes"),
        py::arg("memory_warning_percent"), py::arg("cpu_warning_percent"),
        py::arg("disk_warning_percent"), py::arg("snapshot_every"), py::arg("forecast_horizon"),
        py::arg("forecast_memory_limit_bytes"), py::arg("journal_ring_bytes"),
        "Opens the manager of a journal root and stream, or shares the one already open in this "
        "process.");
  m.def(
      "report_fatal_error_all",
      [](std::string type, std::string message, std::vector<std::string> frames) {
        std::vector<std::shared_ptr<Shared>> open = OpenManagers();
        py::gil_scoped_release nogil;
        for (auto& s : open) {
          std::shared_ptr<RecoveryManager> rm;
          {
            std::lock_guard lock(s->mu);
            rm = s->manager;
          }
          if (rm) rm->report_fatal_error({type, message, frames});
        }
        return open.size();
      },
      "Journals a fatal error (an uncaught exception) in every open manager.");
  m.def(
      "close_all",
      [] {
        std::vector<std::shared_ptr<Shared>> open = OpenManagers();
        py::gil_scoped_release nogil;
        for (auto& s : open) s->Close();
      },
      "Closes every open manager (each records a clean stop unless it recorded a fatal error).");
  m.def(
      "prepare_thread", [] { RecoveryManager::prepare_thread(); },
      "Gives the calling thread an alternate signal stack (RecoveryManager::prepare_thread).");
  m.attr("RECOVERY_EXHAUSTED_EXIT_CODE") = kRecoveryExhaustedExitCode;
}
