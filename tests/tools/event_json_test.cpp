#include "event_json.h"

#include <flatbuffers/reflection.h>
#include <gtest/gtest.h>

#include "blackbox/event.h"
#include "event_schema.h"
#include "human_format.h"
#include "json_writer.h"  // Lower
#include "sample_events.h"

namespace blackbox::tools {
namespace {

constexpr int64_t kT0 = 1768473000LL * 1'000'000'000;

fb::EventT Envelope() {
  fb::EventT e;
  e.time_ns = kT0 + 123456789;
  e.mono_ns = 42;
  e.pid = 4242;
  e.stream = "app";
  e.severity = fb::Severity::Error;
  return e;
}

std::string Packed(const fb::EventT& e) {
  flatbuffers::FlatBufferBuilder fbb;
  PackEvent(e, fbb);
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

Json ToJson(const fb::EventT& e, uint64_t seq = 12) {
  std::string bytes = Packed(e);
  const fb::Event* event = VerifyEvent(Bytes(bytes));
  EXPECT_NE(event, nullptr);
  return EventToJson(*event, "app", seq);
}

// JSON -> event -> JSON must give the same text: the import round trip.
void ExpectRoundTrip(const fb::EventT& e) {
  std::string first = ToJson(e).dump();
  ParsedEvent parsed;
  std::string why;
  ASSERT_TRUE(JsonToEvent(Json::parse(first), &parsed, &why)) << why;
  EXPECT_EQ(parsed.stream, "app");
  EXPECT_EQ(parsed.seq, 12u);
  EXPECT_EQ(ToJson(parsed.event).dump(), first);
}

TEST(EventJson, ErrorHasTheIssuesShape) {
  fb::EventT e = Envelope();
  fb::ErrorT p;
  p.context = "order_execution";
  p.exception_type = "ValueError";
  p.message = "bad \"price\"\n";
  p.frames = {"a", "b"};
  e.payload.Set(p);
  Json j = ToJson(e);
  EXPECT_EQ(j.dump(),
            R"({"seq":12,"stream":"app","time":"2026-01-15T10:30:00.123456789Z","type":"error",)"
            R"("severity":"error","pid":4242,"mono_ns":42,"context":"order_execution",)"
            R"("exception_type":"ValueError","message":"bad \"price\"\n","frames":["a","b"],)"
            R"("recovery_attempt":0})");
  ExpectRoundTrip(e);
}

bool IsEnum(const reflection::Field& field) {
  const reflection::BaseType t = field.type()->base_type();
  return field.type()->index() >= 0 && t != reflection::Obj && t != reflection::Vector &&
         t != reflection::Union;
}

// The schema itself (events.bfbs, made by flatc from events.fbs at build
// time) says which fields each payload has: each one must be a key of the
// event's JSON, and a value given to it in JSON must come back from import.
// A field added to the schema but not to event_fields.h fails here.
TEST(EventJson, EveryFieldOfTheSchemaIsWrittenAndReadBack) {
  std::string bfbs;
  const reflection::Schema* schema =
      ::blackbox::testing::LoadEventSchema(BLACKBOX_EVENTS_BFBS, bfbs);
  ASSERT_NE(schema, nullptr) << BLACKBOX_EVENTS_BFBS;
  const reflection::Enum* payloads = schema->enums()->LookupByKey("blackbox.fb.Payload");
  ASSERT_NE(payloads, nullptr);
  size_t tables = 0;
  for (const reflection::EnumVal* member : *payloads->values()) {
    if (member->value() == 0) continue;  // NONE
    ++tables;
    const reflection::Object* table = schema->objects()->Get(member->union_type()->index());
    const auto type = static_cast<fb::Payload>(member->value());
    const Json envelope = {{"seq", 12u},
                           {"stream", "app"},
                           {"time", "2026-01-15T10:30:00Z"},
                           {"type", PayloadName(type)}};
    // Every field, with a value that is not its default.
    Json given = envelope;
    for (const reflection::Field* field : *table->fields()) {
      if (field->deprecated()) continue;
      const std::string name = field->name()->str();
      switch (field->type()->base_type()) {
        case reflection::String:
          given[name] = "given " + name;
          break;
        case reflection::Vector:  // frames: strings; Config's entries: key -> value
          given[name] = field->type()->element() == reflection::Obj
                            ? Json::object({{"given", name}})
                            : Json::array({"given " + name});
          break;
        case reflection::Bool:
          given[name] = true;
          break;
        case reflection::Float:
        case reflection::Double:
          given[name] = 2.5;
          break;
        default:  // integers, and enums (as the number of their second value)
          given[name] = IsEnum(*field) ? Json(1) : Json(7);
          break;
      }
    }
    ParsedEvent parsed;
    std::string why;
    ASSERT_TRUE(JsonToEvent(given, &parsed, &why)) << why;
    const Json written = ToJson(parsed.event);
    for (const reflection::Field* field : *table->fields()) {
      if (field->deprecated()) continue;
      const std::string name = field->name()->str();
      ASSERT_TRUE(written.contains(name)) << table->name()->str() << "." << name << " not written";
      const Json& value = written[name];
      if (IsEnum(*field)) {
        // An enum: written as the name of the value given by number.
        const reflection::Enum* e = schema->enums()->Get(field->type()->index());
        EXPECT_EQ(value, Lower(e->values()->Get(1)->name()->str()))
            << table->name()->str() << "." << name << " not read";
      } else {
        EXPECT_EQ(value, given[name]) << table->name()->str() << "." << name << " not read";
      }
    }
    // And nothing but the envelope and the schema's fields.
    size_t fields = 0;
    for (const reflection::Field* field : *table->fields()) fields += field->deprecated() ? 0 : 1;
    EXPECT_EQ(written.size(), 7 + fields) << written.dump();
  }
  EXPECT_EQ(tables, static_cast<size_t>(fb::Payload::MAX));
}

TEST(EventJson, EveryPayloadTypeRoundTrips) {
  std::vector<fb::EventT> events = ::blackbox::testing::SampleEvents();
  ASSERT_EQ(events.size(), static_cast<size_t>(fb::Payload::MAX));
  for (const auto& e : events) {
    SCOPED_TRACE(PayloadName(e.payload.type));
    ExpectRoundTrip(e);
  }
}

// A JSON object holds a key once, so a Config event that repeats a key (a
// damaged or hand-made record) is written with the last value, and the
// round trip still holds. Keys that differ only in invalid UTF-8 are written
// as the same text, so they count as repeats too.
TEST(EventJson, RepeatedConfigKeysAreWrittenOnceWithTheLastValue) {
  fb::EventT e = Envelope();
  fb::ConfigT p;
  p.component = "recovery";
  for (auto [k, v] : {std::pair{"max_restarts", "5"}, std::pair{"name\xf4", "a"},
                      std::pair{"max_restarts", "9"}, std::pair{"name\x8c", "b"}}) {
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = k;
    entry->value = v;
    p.entries.push_back(std::move(entry));
  }
  e.payload.Set(std::move(p));
  // The text as export writes it (EventToJson would hide a repeated key: the
  // parser keeps one).
  std::string bytes = Packed(e);
  const fb::Event* event = VerifyEvent(Bytes(bytes));
  ASSERT_NE(event, nullptr);
  std::string line = EventToJsonLine(*event, "app", 12);
  EXPECT_NE(line.find("\"entries\":{\"max_restarts\":\"9\",\"name\xef\xbf\xbd\":\"b\"}}"),
            std::string::npos)
      << line;

  ParsedEvent parsed;
  std::string why;
  ASSERT_TRUE(JsonToEvent(Json::parse(line), &parsed, &why)) << why;
  std::string again = Packed(parsed.event);
  const fb::Event* back = VerifyEvent(Bytes(again));
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(EventToJsonLine(*back, "app", 12), line);
}

// A config value that is absent or empty is written as null, like every text
// field, and reads back as the same absent value: export -> import -> export
// gives the same line.
TEST(EventJson, ConfigEntryWithoutAValueRoundTripsAsNull) {
  fb::EventT e = Envelope();
  fb::ConfigT p;
  p.component = "recovery";
  for (auto [k, v] : {std::pair{"max_restarts", "5"}, std::pair{"max_recovery_attempts", ""}}) {
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = k;
    entry->value = v;
    p.entries.push_back(std::move(entry));
  }
  e.payload.Set(std::move(p));
  Json json = ToJson(e);
  EXPECT_TRUE(json["entries"]["max_recovery_attempts"].is_null()) << json.dump();
  ExpectRoundTrip(e);
}

// The watchdog's health samples measure its child's tree only: what it did not
// measure is left out of the line, not shown as 0.
TEST(HumanFormat, HealthLineLeavesOutWhatWasNotMeasured) {
  fb::EventT e = Envelope();
  fb::HealthT h;
  h.rss_bytes = 10 << 20;
  h.cpu_percent = 1.5;
  h.threads = 3;
  h.sampled_pid = 77;
  e.payload.Set(h);
  std::string bytes = Packed(e);
  const fb::Event* event = VerifyEvent(Bytes(bytes));
  ASSERT_NE(event, nullptr);
  EXPECT_EQ(Summary(*event), "pid 77 rss 10.0 MB, cpu 1.5%, 3 threads");
}

// What the watchdog saw of a death says what happened: an exit status is
// "exited with status N", a signal "killed by SIG…"; a restart after a
// non-zero exit is "after failure", one after a signal "after crash".
TEST(HumanFormat, DeathsSayHowTheChildEnded) {
  auto summary = [](fb::PayloadUnion payload) {
    fb::EventT e = Envelope();
    e.payload = std::move(payload);
    std::string bytes = Packed(e);
    const fb::Event* event = VerifyEvent(Bytes(bytes));
    EXPECT_NE(event, nullptr);
    return event ? Summary(*event) : std::string();
  };
  fb::CrashT exited;
  exited.origin = fb::CrashOrigin::Watchdog;
  exited.crashed_pid = 41;
  exited.exit_code = 3;
  fb::PayloadUnion p;
  p.Set(exited);
  EXPECT_EQ(summary(std::move(p)), "crash of pid 41: exited with status 3");

  fb::CrashT killed = exited;
  killed.exit_code = -1;
  killed.signal = 11;
  killed.core_dumped = true;
  p.Set(killed);
  EXPECT_EQ(summary(std::move(p)), "crash of pid 41: killed by SIGSEGV (core dumped)");

  fb::RestartT failure;
  failure.attempt = 2;
  failure.reason = fb::RestartReason::Failure;
  failure.exit_code = 3;
  p.Set(failure);
  EXPECT_EQ(summary(std::move(p)).rfind("restart 2 after failure (exit 3)", 0), 0u);
}

TEST(EventJson, EnumsAreLowerCaseNames) {
  fb::EventT e = Envelope();
  fb::CallbackT p;
  p.kind = fb::CallbackKind::Recovery;
  e.payload.Set(p);
  Json j = ToJson(e);
  EXPECT_EQ(j["type"], "callback");
  EXPECT_EQ(j["kind"], "recovery");
  EXPECT_EQ(j["severity"], "error");
}

TEST(EventJson, KeepsZeroTimesAndPidsOnImport) {
  // EncodeEvent would fill these from the clock; an import must not.
  fb::EventT e = Envelope();
  e.time_ns = 0;
  e.mono_ns = 0;
  e.pid = 0;
  fb::GaugeT g;
  g.name = "x";
  e.payload.Set(g);
  ExpectRoundTrip(e);
  EXPECT_EQ(ToJson(e)["pid"], 0);
}

TEST(EventJson, RejectsMalformedObjectsWithAReason) {
  struct Case {
    const char* json;
    const char* reason;
  };
  const Case cases[] = {
      {R"([1,2])", "object"},
      {R"({"stream":"app","time":"2026-01-15T10:30:00Z","type":"gauge"})", "seq"},
      {R"({"seq":1,"time":"2026-01-15T10:30:00Z","type":"gauge"})", "stream"},
      {R"({"seq":1,"stream":"app","time":"noon","type":"gauge"})", "time"},
      {R"({"seq":1,"stream":"app","time":"2026-01-15T10:30:00Z","type":"meteor"})", "meteor"},
      {R"({"seq":1,"stream":"app","time":"2026-01-15T10:30:00Z","type":"gauge","value":"x"})",
       "value"},
      {R"({"seq":1,"stream":"app","time":"2026-01-15T10:30:00Z","type":"gauge","pid":1e20})",
       "pid"},
      {R"({"seq":1,"stream":"app","time":"2026-01-15T10:30:00Z","type":"gauge","pid":5000000000})",
       "range"},
      {R"({"seq":1,"stream":"app","time":"2026-01-15T10:30:00Z","type":"callback","kind":"x"})",
       "kind"},
  };
  for (const Case& c : cases) {
    ParsedEvent parsed;
    std::string why;
    EXPECT_FALSE(JsonToEvent(Json::parse(c.json), &parsed, &why)) << c.json;
    EXPECT_NE(why.find(c.reason), std::string::npos) << c.json << " -> " << why;
  }
}

}  // namespace
}  // namespace blackbox::tools
