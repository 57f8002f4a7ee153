#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "blackbox/state.h"
#include "event_builders.h"
#include "event_schema.h"
#include "snapshot_fields.h"

namespace blackbox {
namespace {

using namespace testing;

SystemState BusyState() {
  fb::CrashT crash;
  crash.origin = fb::CrashOrigin::Terminate;
  crash.signal = 6;
  crash.exception_type = "std::logic_error";
  crash.exception_message = "bad";
  crash.frames = {"f()"};
  fb::HealthT h;
  h.rss_bytes = 3 << 20;
  h.cpu_percent = 1.5;
  h.memory_percent = 81;
  h.disk_percent = 12;
  h.threads = 4;
  h.open_fds = 9;
  h.over_threshold = true;
  fb::LifecycleT exited = Lifecycle(fb::Phase::Stopped, 77);
  exited.signal = 9;
  Folder f;
  f.Add(kAppStream, 1, 5, Lifecycle(fb::Phase::Starting))
      .Add(kAppStream, 2, 5, Gauge("active_positions", 2))
      .Add(kAppStream, 3, 5, Error("ctx", "type", "msg"))
      .Add(kAppStream, 4, 5, Lifecycle(fb::Phase::Recovering))
      .Add(kAppStream, 5, 5, Callback(fb::CallbackKind::Recovery, "r", false))
      .Add(kAppStream, 6, 5, h)
      .Add(kAppStream, 7, 5, crash)
      .Add(kAppStream, 8, 5, Restart(fb::RestartReason::Unclean))
      .Add(kWatchdogStream, 9, 6, Lifecycle(fb::Phase::Starting))
      .Add(kWatchdogStream, 10, 6, Lifecycle(fb::Phase::Running, 77, "ok"))
      .Add(kWatchdogStream, 11, 6, exited)
      .Add(kWatchdogStream, 12, 6, Restart(fb::RestartReason::Memory, 3));
  f.state.max_restarts = 8;
  f.state.max_recovery_attempts = 1;
  f.state.watchdog.metrics_address = "127.0.0.1:9464";
  f.state.watchdog.forecast_seconds = 21.5;
  f.state.watchdog.forecast_message = "rss 143 MB rising";
  f.state.forecasts["disk"] = {42.0, "disk 9000 MB rising"};
  return f.state;
}

TEST(Snapshot, RoundTripsEveryField) {
  SystemState s = BusyState();
  std::string bytes = EncodeSnapshot(s);
  Result<SystemState> back = DecodeSnapshot(Bytes(bytes));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), s);
  EXPECT_EQ(back->watchdog.last_exit_signal, 9);
  EXPECT_EQ(back->recovery_attempts, 1);
  EXPECT_EQ(back->watchdog.metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(back->watchdog.forecast_seconds, 21.5);
  EXPECT_EQ(back->watchdog.forecast_message, "rss 143 MB rising");
  EXPECT_EQ(back->forecasts.at("disk").seconds_to_limit, 42.0);
}

// A field the codec forgets fails here: the comparison is the defaulted one,
// which compares every field there is. Every prefix of a generated history
// (both streams, every payload the fold reads) round-trips.
TEST(Snapshot, RoundTripsEveryStateOfGeneratedHistories) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SystemState s;
    for (const GeneratedEvent& g : GenerateEvents(seed, 200)) {
      Fold(s, *g.event.event(), g.stream, g.seq);
      Result<SystemState> back = DecodeSnapshot(Bytes(EncodeSnapshot(s)));
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      ASSERT_EQ(back.value(), s) << "seed " << seed << ", " << g.stream << " seq " << g.seq;
    }
  }
}

TEST(Snapshot, RoundTripsTheDefaultState) {
  SystemState s;
  std::string bytes = EncodeSnapshot(s);
  Result<SystemState> back = DecodeSnapshot(Bytes(bytes));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), s);
}

TEST(Snapshot, FoldingOnFromADecodedSnapshotMatchesAFullFold) {
  SystemState s = BusyState();
  Result<SystemState> back = DecodeSnapshot(Bytes(EncodeSnapshot(s)));
  ASSERT_TRUE(back.ok());
  TestEvent more = Make(kAppStream, 20, 5, Lifecycle(fb::Phase::Running));
  Fold(s, *more.event(), kAppStream, 9);
  Fold(back.value(), *more.event(), kAppStream, 9);
  EXPECT_EQ(back.value(), s);
}

TEST(Snapshot, DecodeRejectsGarbageWithoutCrashing) {
  std::string garbage = "definitely not a flatbuffer, but long enough to look at";
  EXPECT_FALSE(DecodeSnapshot(Bytes(garbage)).ok());
  EXPECT_FALSE(DecodeSnapshot({}).ok());
  std::string truncated = EncodeSnapshot(BusyState());
  truncated.resize(truncated.size() / 2);
  EXPECT_FALSE(DecodeSnapshot(Bytes(truncated)).ok());
}

// The schema itself (events.bfbs, made by flatc at build time) says which
// fields the snapshot's tables have: the lists in snapshot_fields.h must name
// each one, and nothing else. A field added to the schema but not to the
// lists fails here, before the round-trip tests would need a state that sets
// it.
template <class Fields>
std::set<std::string> Listed() {
  std::set<std::string> names;
  Fields::Visit([&](std::string_view name, auto, auto) { names.emplace(name); });
  return names;
}

TEST(Snapshot, EveryFieldOfTheSchemaIsListed) {
  std::string bfbs;
  const reflection::Schema* schema = LoadEventSchema(BLACKBOX_EVENTS_BFBS, bfbs);
  ASSERT_NE(schema, nullptr) << BLACKBOX_EVENTS_BFBS;
  auto fields_of = [&](const char* table) {
    std::set<std::string> names;
    const reflection::Object* object = schema->objects()->LookupByKey(table);
    EXPECT_NE(object, nullptr) << table;
    if (object == nullptr) return names;
    for (const reflection::Field* field : *object->fields()) {
      if (!field->deprecated()) names.insert(field->name()->str());
    }
    return names;
  };
  using namespace snapshot_fields;
  std::set<std::string> snapshot = Listed<StateSnapshotFields>();
  for (std::string_view name : kByHand) snapshot.emplace(name);
  EXPECT_EQ(snapshot, fields_of("blackbox.fb.StateSnapshot"));
  EXPECT_EQ(Listed<ErrorSummaryFields>(), fields_of("blackbox.fb.ErrorSummary"));
  EXPECT_EQ(Listed<CrashSummaryFields>(), fields_of("blackbox.fb.CrashSummary"));
  EXPECT_EQ(Listed<WatchdogSummaryFields>(), fields_of("blackbox.fb.WatchdogSummary"));
}

}  // namespace
}  // namespace blackbox
