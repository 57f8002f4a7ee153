// The payloads of the events the watchdog journals, each built in one place.
// The supervisor decides what happened and when; these say how it is written
// down. Pure: no clock, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/forecast.h"
#include "exit_verdict.h"
#include "limit_tracker.h"
#include "output.h"
#include "process_tree.h"

namespace blackbox::watchdog::events {

// The effective configuration (component "watchdog"), entries in order.
fb::PayloadUnion Config(const std::vector<std::pair<std::string, std::string>>& entries);
// A damaged journal found at start, as an error of context "journal".
fb::PayloadUnion JournalDamage(std::string message);
// A phase of the watchdog (child_pid 0) or of its child.
fb::PayloadUnion Lifecycle(fb::Phase phase, std::string reason, int child_pid, int exit_code = -1,
                           int signal = 0, bool core_dumped = false);
// A line of the child's output that matched an --error-pattern (or, with an
// empty pattern and line, only the count of matches suppressed).
fb::PayloadUnion OutputMatch(bool is_stderr, const LineMatch& match);
// Output the child wrote while nobody read the watchdog's: the bytes dropped.
fb::PayloadUnion OutputDropped(bool is_stderr, uint64_t bytes);
// A death of the child the watchdog did not order (or a hang's SIGABRT).
fb::PayloadUnion ChildCrash(int pid, const ExitInfo& exit, int64_t wall_ns);
// The restart that follows a death; its child_pid is set once it exists.
fb::RestartT Restart(int attempt, fb::RestartReason reason, const ExitInfo& exit, int64_t delay_ns);
// A health sample of the child's process tree.
fb::PayloadUnion Health(const TreeSample& sample, std::optional<double> cpu_percent, int pid,
                        bool over_threshold);
// A sample over --max-memory or --max-cpu (LimitTracker's breach).
fb::PayloadUnion LimitBreach(const LimitTracker::Breach& breach, int pid);
// No heartbeat (or a stop that overran STOPPING=1) for `silent_ns`, against
// a limit of `limit_seconds`: the child is aborted.
fb::PayloadUnion HeartbeatMissed(int64_t silent_ns, double limit_seconds, int pid);
// Still running --stop-timeout after it was told to stop: SIGKILL.
fb::PayloadUnion StopOverran(fb::LimitKind kind, int64_t since_ns, double stop_timeout, int pid);
// The child's memory heading for --max-memory (or the forecast cleared).
fb::PayloadUnion Forecast(const ForecastEvent& forecast, int pid);
// Notify datagrams refused (a sender outside the child), counted so far.
fb::PayloadUnion NotifyDropped(uint64_t count);

}  // namespace blackbox::watchdog::events
