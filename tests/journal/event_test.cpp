#include "blackbox/event.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sample_events.h"

namespace blackbox {
namespace {

// One fully populated event of every payload type (tests/support).
using ::blackbox::testing::SampleEvents;

TEST(Event, EveryPayloadTypeRoundTrips) {
  auto events = SampleEvents();
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
  std::string bytes = EncodeEvent(SampleEvents()[0]);
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
