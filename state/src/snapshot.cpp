// SystemState <-> StateSnapshot (schemas/events.fbs).
//
// Every field of SystemState round-trips, so that "snapshot + tail" folds to
// exactly the state a full fold gives.
#include <memory>

#include "blackbox/state.h"

namespace blackbox {

std::string EncodeSnapshot(const SystemState& s) {
  fb::StateSnapshotT t;
  for (const auto& [stream, seq] : s.covered) {
    auto p = std::make_unique<fb::StreamPositionT>();
    p->stream = stream;
    p->seq = seq;
    t.covered.push_back(std::move(p));
  }
  t.timestamp_ns = s.timestamp_ns;
  t.status = s.status;
  t.run_started_ns = s.run_started_ns;
  t.memory_usage_mb = s.memory_usage_mb;
  t.cpu_usage = s.cpu_usage;
  if (s.last_error) {
    t.last_error = std::make_unique<fb::ErrorSummaryT>();
    t.last_error->time_ns = s.last_error->time_ns;
    t.last_error->context = s.last_error->context;
    t.last_error->exception_type = s.last_error->exception_type;
    t.last_error->message = s.last_error->message;
  }
  t.restart_count = s.restart_count;
  t.max_restarts = s.max_restarts;
  t.recovery_attempts = s.recovery_attempts;
  t.max_recovery_attempts = s.max_recovery_attempts;
  for (const auto& [name, value] : s.gauges) {
    auto g = std::make_unique<fb::GaugeValueT>();
    g->name = name;
    g->value = value;
    t.gauges.push_back(std::move(g));
  }
  t.error_count = s.error_count;
  t.crash_count = s.crash_count;
  t.event_count = s.event_count;
  if (s.last_crash) {
    const CrashInfo& c = *s.last_crash;
    t.last_crash = std::make_unique<fb::CrashSummaryT>();
    t.last_crash->time_ns = c.time_ns;
    t.last_crash->stream = c.stream;
    t.last_crash->origin = c.origin;
    t.last_crash->signal = c.signal;
    t.last_crash->crashed_pid = c.crashed_pid;
    t.last_crash->exit_code = c.exit_code;
    t.last_crash->exception_type = c.exception_type;
    t.last_crash->exception_message = c.exception_message;
    t.last_crash->first_frame = c.first_frame;
  }
  const WatchdogInfo& w = s.watchdog;
  t.watchdog = std::make_unique<fb::WatchdogSummaryT>();
  t.watchdog->watchdog_pid = w.watchdog_pid;
  t.watchdog->child_pid = w.child_pid;
  t.watchdog->phase = w.phase;
  t.watchdog->started_ns = w.started_ns;
  t.watchdog->child_started_ns = w.child_started_ns;
  t.watchdog->restart_count = w.restart_count;
  t.watchdog->total_restarts = w.total_restarts;
  t.watchdog->last_exit_code = w.last_exit_code;
  t.watchdog->last_exit_signal = w.last_exit_signal;
  t.watchdog->last_restart_reason = w.last_restart_reason;
  t.watchdog->has_last_exit = w.has_last_exit;
  t.watchdog->child_rss_bytes = w.child_rss_bytes;
  t.watchdog->child_cpu_percent = w.child_cpu_percent;
  t.watchdog->status_text = w.status_text;
  t.watchdog->last_heartbeat_ns = w.last_heartbeat_ns;
  t.watchdog->metrics_address = w.metrics_address;
  t.watchdog->forecast_seconds = w.forecast_seconds;
  t.watchdog->forecast_message = w.forecast_message;
  t.memory_percent = s.memory_percent;
  t.disk_percent = s.disk_percent;
  t.threads = s.threads;
  t.open_fds = s.open_fds;
  t.health_warnings = s.health_warnings;
  t.pid = s.pid;

  flatbuffers::FlatBufferBuilder fbb(512);
  fbb.Finish(fb::StateSnapshot::Pack(fbb, &t));
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

Result<SystemState> DecodeSnapshot(std::span<const uint8_t> bytes) {
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) ||
      !verifier.VerifyBuffer<fb::StateSnapshot>(nullptr)) {
    return Status::Corruption("snapshot fails the FlatBuffers verifier");
  }
  const fb::StateSnapshot* t = flatbuffers::GetRoot<fb::StateSnapshot>(bytes.data());
  auto str = [](const flatbuffers::String* v) { return v ? v->str() : std::string(); };

  SystemState s;
  if (t->covered() != nullptr) {
    for (const fb::StreamPosition* p : *t->covered()) s.covered[str(p->stream())] = p->seq();
  }
  s.timestamp_ns = t->timestamp_ns();
  s.status = t->status();
  s.pid = t->pid();
  s.run_started_ns = t->run_started_ns();
  s.memory_usage_mb = t->memory_usage_mb();
  s.cpu_usage = t->cpu_usage();
  s.memory_percent = t->memory_percent();
  s.disk_percent = t->disk_percent();
  s.threads = t->threads();
  s.open_fds = t->open_fds();
  if (const fb::ErrorSummary* e = t->last_error(); e != nullptr) {
    s.last_error =
        ErrorInfo{e->time_ns(), str(e->context()), str(e->exception_type()), str(e->message())};
  }
  s.restart_count = t->restart_count();
  s.max_restarts = t->max_restarts();
  s.recovery_attempts = t->recovery_attempts();
  s.max_recovery_attempts = t->max_recovery_attempts();
  if (t->gauges() != nullptr) {
    for (const fb::GaugeValue* g : *t->gauges()) s.gauges[str(g->name())] = g->value();
  }
  s.event_count = t->event_count();
  s.error_count = t->error_count();
  s.crash_count = t->crash_count();
  s.health_warnings = t->health_warnings();
  if (const fb::CrashSummary* c = t->last_crash(); c != nullptr) {
    CrashInfo info;
    info.time_ns = c->time_ns();
    info.stream = str(c->stream());
    info.origin = c->origin();
    info.signal = c->signal();
    info.crashed_pid = c->crashed_pid();
    info.exit_code = c->exit_code();
    info.exception_type = str(c->exception_type());
    info.exception_message = str(c->exception_message());
    info.first_frame = str(c->first_frame());
    s.last_crash = std::move(info);
  }
  if (const fb::WatchdogSummary* w = t->watchdog(); w != nullptr) {
    WatchdogInfo& o = s.watchdog;
    o.watchdog_pid = w->watchdog_pid();
    o.child_pid = w->child_pid();
    o.phase = w->phase();
    o.started_ns = w->started_ns();
    o.child_started_ns = w->child_started_ns();
    o.restart_count = w->restart_count();
    o.total_restarts = w->total_restarts();
    o.has_last_exit = w->has_last_exit();
    o.last_exit_code = w->last_exit_code();
    o.last_exit_signal = w->last_exit_signal();
    o.last_restart_reason = w->last_restart_reason();
    o.child_rss_bytes = w->child_rss_bytes();
    o.child_cpu_percent = w->child_cpu_percent();
    o.status_text = str(w->status_text());
    o.last_heartbeat_ns = w->last_heartbeat_ns();
    o.metrics_address = str(w->metrics_address());
    o.forecast_seconds = w->forecast_seconds();
    o.forecast_message = str(w->forecast_message());
  }
  return s;
}

}  // namespace blackbox
