// Conversion between journaled events and their JSON form.
//
// One event is one JSON object:
//   {"seq": 12, "stream": "app", "time": "2026-01-15T10:30:00.123456789Z",
//    "type": "error", "severity": "error", "pid": 4242, "mono_ns": 81234567,
//    ...payload fields under their schema names}
// Enum values are written as lower-case names ("recovery", "crash", …); a value
// this build does not know is written as its number. Every field is always
// written (defaults included), so the shape of a type never varies.
//
// EventToJson and JsonToEvent are exact inverses: JsonToEvent(EventToJson(e))
// packs to an event whose JSON is identical. That is what makes
// `export --history` → `import` → `export --history` byte-identical.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "blackbox/event.h"

namespace blackbox::tools {

// Key order matters to people reading the output, so objects keep insertion order.
using Json = nlohmann::ordered_json;

// The JSON object for `event`, stored as `seq` of `stream`.
Json EventToJson(const fb::Event& event, std::string_view stream, uint64_t seq);

// The same object as one line of text (no trailing newline), appended to
// `out`. This is the fast path used by export and replay; EventToJson parses
// its output, so the two never disagree.
void AppendEventJson(std::string& out, const fb::Event& event, std::string_view stream,
                     uint64_t seq);
std::string EventToJsonLine(const fb::Event& event, std::string_view stream, uint64_t seq);

// An event parsed back from its JSON object.
struct ParsedEvent {
  std::string stream;
  uint64_t seq = 0;
  fb::EventT event;
};

// Parses one object produced by EventToJson. Returns false with a one-line
// reason in *why for anything malformed (missing or mistyped field, unknown
// type or enum name, unparsable time). Unknown keys are ignored so that a file
// written by a newer build still imports.
// `object` keeps its key order (Config entries are stored in the order given).
bool JsonToEvent(const Json& object, ParsedEvent* out, std::string* why);

// Finishes `event` into `fbb` exactly as given: unlike EncodeEvent, zero
// times and pids are kept, not replaced by the current clock and pid.
void PackEvent(const fb::EventT& event, flatbuffers::FlatBufferBuilder& fbb);

}  // namespace blackbox::tools
