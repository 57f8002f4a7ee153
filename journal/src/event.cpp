#include "blackbox/event.h"

#include <pthread.h>
#include <string.h>  // sigabbrev_np
#include <unistd.h>

#include <array>
#include <atomic>
#include <ctime>
#include <mutex>

namespace blackbox {
namespace {

int64_t ClockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// getpid() is a real system call (glibc stopped caching it), and a costly one
// in a VM; every event carries the pid, so it is cached. A forked child
// clears the cache (pthread_atfork) and asks again.
std::atomic<int32_t> g_pid{0};

int32_t CachedPid() {
  int32_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid != 0) return pid;
  static std::once_flag atfork;
  std::call_once(atfork, [] {
    pthread_atfork(nullptr, nullptr, [] { g_pid.store(0, std::memory_order_relaxed); });
  });
  pid = static_cast<int32_t>(getpid());
  g_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

constexpr std::array<std::string_view, 12> kPayloadNames = {
    "none",     "error", "crash", "health", "lifecycle", "restart",
    "callback", "gauge", "log",   "limit",  "config",    "forecast"};
static_assert(kPayloadNames.size() == static_cast<size_t>(fb::Payload::MAX) + 1,
              "one name for each payload of the schema");

}  // namespace

int64_t WallNowNs() { return ClockNs(CLOCK_REALTIME); }
int64_t MonoNowNs() { return ClockNs(CLOCK_MONOTONIC); }

std::string EncodeEvent(fb::EventT event) {
  if (event.time_ns == 0) event.time_ns = WallNowNs();
  if (event.mono_ns == 0) event.mono_ns = MonoNowNs();
  if (event.pid == 0) event.pid = CachedPid();
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(fb::Event::Pack(fbb, &event), fb::EventIdentifier());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

void FinishEvent(flatbuffers::FlatBufferBuilder& fbb, std::string_view stream,
                 fb::Severity severity, fb::Payload type, flatbuffers::Offset<void> payload,
                 int64_t time_ns, int64_t mono_ns, int32_t pid) {
  auto stream_off = fbb.CreateString(stream.data(), stream.size());
  fb::EventBuilder b(fbb);
  b.add_time_ns(time_ns != 0 ? time_ns : WallNowNs());
  b.add_mono_ns(mono_ns != 0 ? mono_ns : MonoNowNs());
  b.add_pid(pid != 0 ? pid : CachedPid());
  b.add_stream(stream_off);
  b.add_severity(severity);
  b.add_payload_type(type);
  b.add_payload(payload);
  fbb.Finish(b.Finish(), fb::EventIdentifier());
}

const fb::Event* VerifyEvent(std::span<const uint8_t> bytes, std::string* why) {
  auto fail = [why](const char* reason) -> const fb::Event* {
    if (why != nullptr) *why = reason;
    return nullptr;
  };
  if (bytes.size() < 8) return fail("record too short to be an event");
  if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) return fail("record too large");
  if (!fb::EventBufferHasIdentifier(bytes.data())) return fail("missing event identifier");
  // Bounded depth and table count keep a hostile record from costing much.
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), /*max_depth=*/32,
                                 /*max_tables=*/100000);
  if (!fb::VerifyEventBuffer(verifier)) return fail("flatbuffers verifier rejected the event");
  const fb::Event* event = fb::GetEvent(bytes.data());
  if (event->payload_type() == fb::Payload::NONE || event->payload() == nullptr) {
    return fail("event has no payload");
  }
  if (static_cast<uint8_t>(event->payload_type()) > static_cast<uint8_t>(fb::Payload::MAX)) {
    return fail("unknown payload type");
  }
  return event;
}

std::string_view PayloadName(fb::Payload type) {
  auto i = static_cast<size_t>(type);
  return i < kPayloadNames.size() ? kPayloadNames[i] : "unknown";
}

fb::Payload PayloadFromName(std::string_view name) {
  for (size_t i = 1; i < kPayloadNames.size(); ++i) {
    if (kPayloadNames[i] == name) return static_cast<fb::Payload>(i);
  }
  return fb::Payload::NONE;
}

namespace {
template <size_t N>
std::string_view NameAt(const std::array<std::string_view, N>& names, size_t i) {
  return i < N ? names[i] : "unknown";
}
constexpr std::array<std::string_view, 5> kSeverityNames = {"debug", "info", "warning", "error",
                                                            "critical"};
constexpr std::array<std::string_view, 9> kPhaseNames = {"initializing", "starting",   "running",
                                                         "error",        "recovering", "stopping",
                                                         "stopped",      "failed",     "backoff"};
constexpr std::array<std::string_view, 9> kRestartReasonNames = {
    "crash", "hang", "memory", "cpu", "exit", "unclean", "requested", "failure", "manual"};
constexpr std::array<std::string_view, 3> kCrashOriginNames = {"signal", "terminate", "watchdog"};
// One name for each value of the schema's enums, no more and no fewer: an
// enum that grows without its name fails to build here.
template <class Enum, size_t N>
constexpr bool NamesEveryValue(const std::array<std::string_view, N>&) {
  return N == static_cast<size_t>(Enum::MAX) + 1 && static_cast<size_t>(Enum::MIN) == 0;
}
static_assert(NamesEveryValue<fb::Severity>(kSeverityNames));
static_assert(NamesEveryValue<fb::Phase>(kPhaseNames));
static_assert(NamesEveryValue<fb::RestartReason>(kRestartReasonNames));
static_assert(NamesEveryValue<fb::CrashOrigin>(kCrashOriginNames));
}  // namespace

std::string SignalName(int signal) {
  const char* abbrev = signal > 0 ? ::sigabbrev_np(signal) : nullptr;
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

std::string_view CrashOriginName(fb::CrashOrigin o) {
  return NameAt(kCrashOriginNames, static_cast<uint8_t>(o));
}

std::string_view SeverityName(fb::Severity s) {
  return NameAt(kSeverityNames, static_cast<uint8_t>(s));
}
std::string_view PhaseName(fb::Phase p) { return NameAt(kPhaseNames, static_cast<uint8_t>(p)); }
std::string_view RestartReasonName(fb::RestartReason r) {
  return NameAt(kRestartReasonNames, static_cast<uint8_t>(r));
}

}  // namespace blackbox
