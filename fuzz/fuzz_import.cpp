// fuzz_import: arbitrary bytes as the file given to `blackbox import`.
//
// The input is read the way import reads it (tools/src/import.cpp): JSON
// Lines with blank lines skipped, or one JSON array of events. Each element
// goes through tools::JsonToEvent, which must either refuse it with a reason
// or produce an event that
//   - packs (tools::PackEvent, as import appends it) into bytes that
//     blackbox::VerifyEvent accepts, so import never writes a record that
//     every reader would then report as damaged;
//   - survives export -> import -> export with an identical JSON line;
//   - folds into a SystemState whose snapshot and system_state.json encode.
// Where import stops at the first bad line, this target goes on to the next
// one, so one input exercises many lines.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "blackbox/event.h"
#include "blackbox/state.h"
#include "event_json.h"
#include "fuzz_check.h"
#include "json_round_trip.h"

namespace blackbox::fuzz {
namespace {

void TakeEvent(const tools::Json& object, SystemState& state) {
  tools::ParsedEvent parsed;
  std::string why;
  if (!tools::JsonToEvent(object, &parsed, &why)) {
    FUZZ_CHECK(!why.empty());  // a refusal always says why
    return;
  }
  FUZZ_CHECK(!parsed.stream.empty());

  flatbuffers::FlatBufferBuilder fbb(512);
  tools::PackEvent(parsed.event, fbb);
  const fb::Event* event = VerifyEvent(Bytes(fbb), &why);
  FUZZ_CHECK_MSG(
      event != nullptr,
      why + " for " + object.dump(-1, ' ', false, tools::Json::error_handler_t::replace));

  CheckJsonRoundTrip(*event, parsed.stream, parsed.seq);
  Fold(state, *event, parsed.stream, parsed.seq);
}

bool Blank(std::string_view line) { return line.find_first_not_of(" \t\r") == line.npos; }

}  // namespace
}  // namespace blackbox::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Times without an offset are local: pin the zone so that runs reproduce.
  setenv("TZ", "UTC", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blackbox;
  using tools::Json;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  SystemState state;

  size_t start = text.find_first_not_of(" \t\r\n\v\f");
  if (start != text.npos && text[start] == '[') {
    // `export --format json` output: one array.
    Json all = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!all.is_discarded() && all.is_array()) {
      for (const Json& element : all) fuzz::TakeEvent(element, state);
    }
  } else {
    while (!text.empty()) {
      size_t end = text.find('\n');
      std::string_view line = text.substr(0, end);
      text.remove_prefix(end == text.npos ? text.size() : end + 1);
      if (fuzz::Blank(line)) continue;
      Json object = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!object.is_discarded()) fuzz::TakeEvent(object, state);
    }
  }

  // What import folded must be representable as a snapshot and a state file.
  std::string snapshot = EncodeSnapshot(state);
  FUZZ_CHECK(DecodeSnapshot(Bytes(snapshot)).ok());
  FUZZ_CHECK(!SystemStateJson(state, -1).empty());
  return 0;
}
