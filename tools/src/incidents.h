// Incidents: one per death of a run of the app that was not a clean stop.
//
// A death leaves up to four records in the journal: the app's own capture
// (a Crash of origin signal/terminate, journaled by the next run), the
// watchdog's observation (a Crash of origin watchdog), the watchdog's limit
// stop (a Limit with action stop/abort/kill) and the restart that followed;
// a death nobody saw (SIGKILL, power loss) leaves only the next run's
// "unclean" restart. IncidentBuilder folds them into one Incident per death.
//
// Rules (records of the same pid are one death when they lie within
// kSameDeathWindowNs of each other):
//   app Crash (signal/terminate)   -> frames, signal, exception, fault address
//   watchdog Crash                  -> signal or exit status, core dumped
//   watchdog Limit stop/abort/kill  -> reason hang / memory / cpu
//   watchdog Restart                -> the restart that followed (attempt, delay,
//                                      new pid); reason hang/memory/cpu/failure
//                                      for the child it replaced
//   app Restart "unclean"           -> the previous app run died; an incident of
//                                      reason "unclean" when nothing else saw it
//   clean stops and Restart exit/requested/manual make no incident.
// Reason, most specific first: hang, memory, cpu (the watchdog's limit);
// terminate (uncaught exception); segfault, abort, bus, fpe, illegal (signal);
// unclean (SIGKILL, or seen only at the next start); exit (non-zero status);
// signal (any other signal).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::tools {

// Records of one pid this close in time are one death.
inline constexpr int64_t kSameDeathWindowNs = 120LL * 1'000'000'000;

// One record an incident was made from.
struct IncidentSource {
  std::string stream;
  uint64_t seq = 0;
  std::string kind;  // "capture", "watchdog", "limit", "restart", "unclean"
};

struct Incident {
  size_t number = 0;    // in the order they happened, from 1
  int64_t time_ns = 0;  // when the run died (the earliest record of it)
  int32_t pid = 0;      // the process that died
  std::string reason;   // see the rules above
  int signal = 0;
  int exit_code = -1;
  bool core_dumped = false;
  uint64_t fault_address = 0;
  std::string exception_type;
  std::string exception_message;
  std::vector<std::string> frames;  // from the app's capture, innermost first
  std::optional<int64_t> lived_ns;  // since the run started, when its start is in the journal
  // The restart that followed, when there was one.
  std::optional<int64_t> restart_time_ns;
  int restart_attempt = 0;
  int64_t restart_delay_ms = 0;
  int32_t restart_pid = 0;
  std::vector<IncidentSource> sources;  // in journal order
  // The record shown as "the crash" (the app's capture when there is one).
  std::string primary_stream;
  uint64_t primary_seq = 0;
  bool has_capture = false;
  // What identifies the crash across runs and rebuilds (IncidentSignature):
  // empty when the incident has neither frames nor an exception.
  std::string signature;
  bool first_seen = false;  // no earlier incident had this signature
  // The GNU build ID of the program that died, as its run recorded it at
  // start (the "recovery" Config's build_id); empty when unknown.
  std::string build_id;
};

// Feed every event of the journal in merged order (MergedReader::Scan), then
// Finish(). Add() copies what it keeps; `event` need only live for the call.
class IncidentBuilder {
 public:
  void Add(std::string_view stream, uint64_t seq, const fb::Event& event);
  // The incidents, ordered by time and numbered from 1.
  std::vector<Incident> Finish();

 private:
  Incident& ForDeath(int32_t pid, int64_t time_ns);
  std::vector<Incident> incidents_;
  std::map<int32_t, int64_t> started_ns_;    // run start per pid
  std::map<int32_t, std::string> build_id_;  // per app pid, from its Config
  int32_t watchdog_child_ = 0;               // the child the watchdog runs now
  int32_t app_pid_ = 0;                      // the app run started last
  int32_t previous_app_pid_ = 0;             // the app run before it
};

// How many application frames a signature is made of.
inline constexpr size_t kSignatureFrames = 3;

// A frame as the crash capture wrote it ("demo::f(int) +0xe (app) at
// f.cpp:42", "g() [inlined] (app) at g.h:7", "app+0x1234", Python's "x.py:4
// in f") reduced to what survives a rebuild: the function name alone, without
// offset, module, source line or compiler clone suffix (".cold",
// " [clone .isra.0]"). Empty when the frame names no function (only a module
// and an offset) or is not the application's: the C library, the C++ runtime,
// the dynamic loader, the program's entry stub or blackbox's crash handler.
std::string FrameFunction(std::string_view frame);

// The first `n` application frames of `frames` (innermost first), reduced by
// FrameFunction.
std::vector<std::string> SignatureFrames(const std::vector<std::string>& frames,
                                         size_t n = kSignatureFrames);

// The signature of an incident: the exception type (or the signal name) and
// its top application frames, hashed with FNV-1a 64 to 12 hex digits. The
// same in every build and on every machine. Empty when the incident has
// neither frames nor an exception.
std::string IncidentSignature(const Incident& i);

// The incidents of one signature (crashes --group).
struct SignatureGroup {
  const Incident* first = nullptr;  // the earliest of them
  const Incident* last = nullptr;   // the newest: the example shown
  size_t count = 0;
  std::vector<std::string> builds;  // the build IDs it was seen in, first seen first
};

// One group per signature among `incidents` (in order), in the order each
// signature first appears; incidents without a signature are in none.
std::vector<SignatureGroup> GroupBySignature(const std::vector<const Incident*>& incidents);

// The reason a fatal signal gives ("segfault" for SIGSEGV, …).
std::string_view ReasonForSignal(int signal);

}  // namespace blackbox::tools
