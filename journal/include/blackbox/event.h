// Building and checking FlatBuffers events.
//
// The schema (schemas/events.fbs) is compiled by flatc into
// <blackbox/events_generated.h>; this header adds the envelope (times, pid,
// stream) and the verifier in one place so that every writer and reader
// agrees on them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "blackbox/events_generated.h"

namespace blackbox {

// Names of the well-known streams of a journal root.
inline constexpr std::string_view kAppStream = "app";
inline constexpr std::string_view kWatchdogStream = "watchdog";

// CLOCK_REALTIME and CLOCK_MONOTONIC in nanoseconds.
int64_t WallNowNs();
int64_t MonoNowNs();

// Serializes `event` (object API). Fields left at zero are filled in:
// time_ns and mono_ns with the current clocks, pid with getpid().
// `stream` is required.
std::string EncodeEvent(fb::EventT event);

// Builds an event around a payload already written into `fbb` and finishes the
// buffer. Cheaper than EncodeEvent for hot paths (no object API allocations).
//   flatbuffers::FlatBufferBuilder fbb(256);
//   auto g = fb::CreateGaugeDirect(fbb, "active_positions", 2.0);
//   FinishEvent(fbb, "app", fb::Severity::Info, fb::Payload::Gauge, g.Union());
//   journal->Append(Bytes(fbb), Durability::kBuffered);
void FinishEvent(flatbuffers::FlatBufferBuilder& fbb, std::string_view stream,
                 fb::Severity severity, fb::Payload type, flatbuffers::Offset<void> payload,
                 int64_t time_ns = 0, int64_t mono_ns = 0, int32_t pid = 0);

inline std::span<const uint8_t> Bytes(const flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetSize()};
}
inline std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Runs the FlatBuffers verifier over `bytes`. REQUIRES: bytes.data() is
// 8-byte aligned (FlatBuffers reads scalars in place); the journal's readers
// hand out aligned records. Returns the event, or nullptr
// with a one-line reason in *why (when why is non-null). Never dereferences an
// unverified buffer.
const fb::Event* VerifyEvent(std::span<const uint8_t> bytes, std::string* why = nullptr);

// Lower-case names used in JSON and on the command line ("error", "crash", …).
std::string_view PayloadName(fb::Payload type);
// Inverse of PayloadName; returns Payload::NONE for an unknown name.
fb::Payload PayloadFromName(std::string_view name);
std::string_view SeverityName(fb::Severity s);
std::string_view PhaseName(fb::Phase p);
std::string_view RestartReasonName(fb::RestartReason r);
std::string_view CrashOriginName(fb::CrashOrigin o);
// "SIGSEGV" for 11; "signal 99" for a number the system does not name.
std::string SignalName(int signal);

// The journal root when neither --journal nor $BLACKBOX_JOURNAL names one
// (relative: the working directory of the process that opens it).
inline constexpr std::string_view kDefaultJournalRoot = "blackbox-journal";

}  // namespace blackbox
