// The timeline as a person reads it: one aligned line per event.
//
//   2026-01-15 11:30:00.123 app      #12     error     error    pid 4242  order_execution: …
//
// Times are local, with milliseconds. Colour (by severity) only when asked,
// which the commands do when stdout is a terminal and NO_COLOR is unset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "blackbox/event.h"

namespace blackbox::tools {

struct HumanStyle {
  bool colour = false;
  size_t stream_width = 8;  // the widest stream name of the journal
  bool utc = false;         // times in UTC instead of local time
};

// One line, without the trailing newline.
std::string FormatEventLine(const fb::Event& event, std::string_view stream, uint64_t seq,
                            const HumanStyle& style);

// What the event says, in words: the last column of FormatEventLine.
std::string Summary(const fb::Event& event);

// True when `fd` is a terminal and colour was not turned off with NO_COLOR.
bool WantColour(int fd);

inline constexpr const char* kRed = "\033[31m";
inline constexpr const char* kGreen = "\033[32m";
inline constexpr const char* kYellow = "\033[33m";

// `text` in `colour` when `on` and `colour` is not empty; else `text`.
std::string Paint(std::string_view text, const char* colour, bool on);

// A phase's colour: running green; error and failed red; starting,
// recovering, stopping and backoff yellow; the rest none ("").
const char* PhaseColour(fb::Phase phase);

}  // namespace blackbox::tools
