// Times on the command line and in JSON.
//
// Output: JSON uses RFC 3339 in UTC with nine fractional digits
// ("2026-01-15T10:30:00.123456789Z"), so nanosecond times survive a round
// trip; people get local time with milliseconds ("2026-01-15 11:30:00.123").
//
// Input (--since, --until, --at) accepts, like journalctl:
//   2026-01-15T10:30:00Z, 2026-01-15T10:30:00.5+02:00   RFC 3339
//   "2026-01-15 10:30:00", 2026-01-15                  local time
//   05:14:41, 05:14                                    that time today, local
//   today, yesterday, tomorrow                         local midnight
//   now, -30s, -5min, -2hours, -1week, -250ms, +5min   relative to now, with
//   "1h 30min", "5min ago"                             systemd.time(7)'s units
//                                                      (ms, s, sec, second(s),
//                                                      m, min, minute(s), h, hr,
//                                                      hour(s), d, day(s), w,
//                                                      week(s))
//   120, watchdog:120                                   a sequence number
// A bare number is a sequence number of the stream chosen with --stream (or
// "app"); STREAM:SEQ names the stream explicitly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace blackbox::tools {

// "2026-01-15T10:30:00.123456789Z". Correct for times before 1970 too.
std::string FormatUtc(int64_t ns);
// The same in quotes (a JSON string), written to `buf`; returns the end.
// REQUIRES: `buf` has room for kMaxQuotedUtc bytes (the text is 32).
inline constexpr size_t kMaxQuotedUtc = 48;
char* QuotedUtcTo(char* buf, int64_t ns);
// "2026-01-15 11:30:00.123" in the local time zone (TZ).
std::string FormatLocalMs(int64_t ns);
// The same layout in UTC: "2026-01-15 10:30:00.123".
std::string FormatUtcMs(int64_t ns);

// An absolute time: RFC 3339 (offset or Z), or a date and time without an
// offset, which is local time. Returns nullopt when `text` is not one.
std::optional<int64_t> ParseAbsoluteTime(std::string_view text);

// A sequence number named on the command line. `stream` is empty when the
// user gave only the number.
struct SeqRef {
  std::string stream;
  uint64_t seq = 0;
};

using TimeSpec = std::variant<int64_t, SeqRef>;  // ns since the epoch, or a seq

// Parses a --since/--until/--at argument. On failure returns nullopt and a
// one-line reason in *why.
std::optional<TimeSpec> ParseTimeSpec(std::string_view text, int64_t now_ns, std::string* why);

}  // namespace blackbox::tools
