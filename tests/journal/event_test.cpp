#include "blackbox/event.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace blackbox {
namespace {

// One fully populated event of every payload type in the schema.
std::vector<fb::EventT> OneOfEach() {
  std::vector<fb::EventT> events;
  auto add = [&](auto payload, fb::Severity sev) {
    fb::EventT e;
    e.time_ns = 1'768'473'000'123'456'789 + static_cast<int64_t>(events.size());
    e.mono_ns = 5'000'000'000 + static_cast<int64_t>(events.size());
    e.pid = 4242;
    e.stream = "app";
    e.severity = sev;
    e.payload.Set(std::move(payload));
    events.push_back(std::move(e));
  };
  fb::ErrorT error;
  error.context = "order_execution";
  error.exception_type = "std::runtime_error";
  error.message = "broker said \"no\"\n";
  error.frames = {"place_order(int)", "main"};
  error.recovery_attempt = 2;
  add(error, fb::Severity::Error);

  fb::CrashT crash;
  crash.origin = fb::CrashOrigin::Terminate;
  crash.signal = 6;
  crash.signal_name = "SIGABRT";
  crash.fault_address = 0xdeadbeef;
  crash.frames = {"a()", "b()"};
  crash.exception_type = "std::logic_error";
  crash.exception_message = "bad";
  crash.crashed_pid = 77;
  crash.exit_code = 134;
  crash.core_dumped = true;
  crash.crash_time_ns = 123;
  add(crash, fb::Severity::Critical);

  fb::HealthT health;
  health.rss_bytes = 512ull << 20;
  health.cpu_percent = 25.7;
  health.memory_percent = 81.5;
  health.disk_percent = 42.0;
  health.threads = 9;
  health.open_fds = 31;
  health.sampled_pid = 4242;
  health.over_threshold = true;
  add(health, fb::Severity::Warning);

  fb::LifecycleT lifecycle;
  lifecycle.phase = fb::Phase::Stopping;
  lifecycle.reason = "SIGTERM";
  lifecycle.child_pid = 99;
  lifecycle.exit_code = 0;
  lifecycle.signal = 15;
  lifecycle.core_dumped = false;
  add(lifecycle, fb::Severity::Info);

  fb::RestartT restart;
  restart.attempt = 3;
  restart.reason = fb::RestartReason::Hang;
  restart.exit_code = -1;
  restart.signal = 9;
  restart.delay_ms = 30000;
  restart.child_pid = 100;
  add(restart, fb::Severity::Warning);

  fb::CallbackT callback;
  callback.kind = fb::CallbackKind::Cleanup;
  callback.name = "close_positions";
  callback.ok = false;
  callback.error = "timeout";
  callback.duration_us = 1500;
  add(callback, fb::Severity::Error);

  fb::GaugeT gauge;
  gauge.name = "active_positions";
  gauge.value = 2;
  add(gauge, fb::Severity::Info);

  fb::LogLineT log;
  log.source = "stderr";
  log.pattern = "ERROR|CRITICAL|FATAL";
  log.text = "ERROR: lost connection";
  log.suppressed = 12;
  add(log, fb::Severity::Warning);

  fb::LimitT limit;
  limit.kind = fb::LimitKind::Memory;
  limit.value = 2100;
  limit.limit = 2048;
  limit.consecutive = 3;
  limit.action = fb::LimitAction::Stop;
  limit.child_pid = 100;
  add(limit, fb::Severity::Warning);

  fb::ConfigT config;
  config.component = "recovery";
  auto entry = [](std::string k, std::string v) {
    auto e = std::make_unique<fb::ConfigEntryT>();
    e->key = std::move(k);
    e->value = std::move(v);
    return e;
  };
  config.entries.push_back(entry("max_restarts", "5"));
  config.entries.push_back(entry("restart_delay", "30"));
  add(std::move(config), fb::Severity::Info);
  return events;
}

TEST(Event, EveryPayloadTypeRoundTrips) {
  auto events = OneOfEach();
  ASSERT_EQ(events.size(), static_cast<size_t>(fb::Payload::MAX));
  for (const auto& original : events) {
    std::string bytes = EncodeEvent(original);
    std::string why;
    const fb::Event* decoded = VerifyEvent(Bytes(bytes), &why);
    ASSERT_NE(decoded, nullptr) << why;
    EXPECT_EQ(decoded->payload_type(), original.payload.type);
    std::unique_ptr<fb::EventT> back(decoded->UnPack());
    EXPECT_TRUE(*back == original) << "payload " << PayloadName(original.payload.type);
  }
}

TEST(Event, EncodeFillsClocksAndPid) {
  fb::EventT e;
  e.stream = "app";
  fb::GaugeT g;
  g.name = "x";
  e.payload.Set(g);
  int64_t before = WallNowNs();
  std::string bytes = EncodeEvent(e);
  const fb::Event* decoded = VerifyEvent(Bytes(bytes));
  ASSERT_NE(decoded, nullptr);
  EXPECT_GE(decoded->time_ns(), before);
  EXPECT_GT(decoded->mono_ns(), 0);
  EXPECT_EQ(decoded->pid(), getpid());
}

TEST(Event, AForkedChildStampsItsOwnPid) {
  // The pid is cached; a fork must not inherit the parent's.
  fb::EventT e;
  e.stream = "app";
  fb::GaugeT g;
  g.name = "x";
  e.payload.Set(g);
  ASSERT_EQ(VerifyEvent(Bytes(EncodeEvent(e)))->pid(), getpid());
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string bytes = EncodeEvent(e);
    const fb::Event* decoded = VerifyEvent(Bytes(bytes));
    _exit(decoded != nullptr && decoded->pid() == getpid() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child stamped the parent's pid";
}

TEST(Event, FinishEventBuildsAVerifiableEvent) {
  flatbuffers::FlatBufferBuilder fbb;
  auto g = fb::CreateGaugeDirect(fbb, "active_connections", 3.0);
  FinishEvent(fbb, "app", fb::Severity::Info, fb::Payload::Gauge, g.Union(), 10, 20, 30);
  const fb::Event* e = VerifyEvent(Bytes(fbb));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->time_ns(), 10);
  EXPECT_EQ(e->mono_ns(), 20);
  EXPECT_EQ(e->pid(), 30);
  ASSERT_NE(e->payload_as_Gauge(), nullptr);
  EXPECT_EQ(e->payload_as_Gauge()->value(), 3.0);
}

TEST(Event, VerifierRejectsGarbageWithAReason) {
  std::string why;
  EXPECT_EQ(VerifyEvent(Bytes(std::string_view("")), &why), nullptr);
  EXPECT_FALSE(why.empty());
  std::string junk(64, '\xff');
  EXPECT_EQ(VerifyEvent(Bytes(junk), &why), nullptr);

  // A real event with its tail cut off must not verify.
  std::string bytes = EncodeEvent(OneOfEach()[0]);
  bytes.resize(bytes.size() / 2);
  EXPECT_EQ(VerifyEvent(Bytes(bytes), &why), nullptr);
}

TEST(Event, NamesRoundTrip) {
  for (int i = 1; i <= static_cast<int>(fb::Payload::MAX); ++i) {
    auto t = static_cast<fb::Payload>(i);
    EXPECT_EQ(PayloadFromName(PayloadName(t)), t);
  }
  EXPECT_EQ(PayloadFromName("nonsense"), fb::Payload::NONE);
  EXPECT_EQ(PayloadName(fb::Payload::LogLine), "log");
  EXPECT_EQ(PhaseName(fb::Phase::Running), "running");
  EXPECT_EQ(SeverityName(fb::Severity::Warning), "warning");
  EXPECT_EQ(RestartReasonName(fb::RestartReason::Memory), "memory");
  EXPECT_EQ(CrashOriginName(fb::CrashOrigin::Terminate), "terminate");
  EXPECT_EQ(CrashOriginName(static_cast<fb::CrashOrigin>(99)), "unknown");
}

}  // namespace
}  // namespace blackbox
