// The promise of tools/src/event_json.h, as a check: the JSON line of an event
// survives `export` -> `import` -> `export` unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "blackbox/event.h"
#include "event_json.h"
#include "fuzz_check.h"

namespace blackbox::fuzz {

// Converts `event` to its JSON line (as `export --history` writes it), parses
// that text back (as `import` reads it), packs it, and checks that the packed
// event verifies and converts to the very same line. Returns the line.
inline std::string CheckJsonRoundTrip(const fb::Event& event, std::string_view stream,
                                      uint64_t seq) {
  std::string first = tools::EventToJsonLine(event, stream, seq);

  tools::Json parsed = tools::Json::parse(first, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK_MSG(!parsed.is_discarded(), first);
  tools::ParsedEvent back;
  std::string why;
  FUZZ_CHECK_MSG(tools::JsonToEvent(parsed, &back, &why), why + " in " + first);
  FUZZ_CHECK_MSG(back.stream == stream && back.seq == seq, first);

  flatbuffers::FlatBufferBuilder fbb(256);
  tools::PackEvent(back.event, fbb);
  const fb::Event* again = VerifyEvent(Bytes(fbb), &why);
  FUZZ_CHECK_MSG(again != nullptr, why + " for " + first);

  std::string second = tools::EventToJsonLine(*again, stream, seq);
  FUZZ_CHECK_MSG(second == first, first + "\n  came back as\n  " + second);
  return first;
}

}  // namespace blackbox::fuzz
