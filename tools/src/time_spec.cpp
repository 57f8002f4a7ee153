#include "time_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <limits>

namespace blackbox::tools {
namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;

struct Split {
  time_t sec;
  int64_t frac_ns;  // always in [0, 1e9)
};

// Floor division, so that times before the epoch keep a non-negative fraction.
Split SplitNs(int64_t ns) {
  int64_t sec = ns / kNsPerSec;
  int64_t frac = ns % kNsPerSec;
  if (frac < 0) {
    frac += kNsPerSec;
    --sec;
  }
  return {static_cast<time_t>(sec), frac};
}

// A cursor over the text being parsed; every Take* returns false without
// consuming when the expected thing is not there.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool done() const { return pos_ == s_.size(); }
  char peek() const { return done() ? '\0' : s_[pos_]; }
  bool Take(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  // Exactly `n` decimal digits.
  bool TakeDigits(size_t n, int* value) {
    if (s_.size() - pos_ < n) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    *value = v;
    return true;
  }
  // One or more digits as a fraction of a second, in ns (digits past the ninth are dropped).
  bool TakeFraction(int64_t* ns) {
    size_t start = pos_;
    int64_t v = 0;
    int used = 0;
    while (!done() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (used < 9) {
        v = v * 10 + (s_[pos_] - '0');
        ++used;
      }
      ++pos_;
    }
    if (pos_ == start) return false;
    for (; used < 9; ++used) v *= 10;
    *ns = v;
    return true;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

template <class T>
bool ParseUnsigned(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The units of systemd.time(7) that have one length (months and years do
// not), in ns per unit.
std::optional<double> UnitScale(std::string_view unit) {
  struct Unit {
    std::string_view name;
    double ns;
  };
  static constexpr Unit kUnits[] = {
      {"ms", 1e6},       {"msec", 1e6},     {"s", 1e9},         {"sec", 1e9},
      {"second", 1e9},   {"seconds", 1e9},  {"m", 60e9},        {"min", 60e9},
      {"minute", 60e9},  {"minutes", 60e9}, {"h", 3600e9},      {"hr", 3600e9},
      {"hour", 3600e9},  {"hours", 3600e9}, {"d", 86400e9},     {"day", 86400e9},
      {"days", 86400e9}, {"w", 604800e9},   {"week", 604800e9}, {"weeks", 604800e9},
  };
  for (const Unit& u : kUnits) {
    if (u.name == unit) return u.ns;
  }
  return std::nullopt;
}

constexpr std::string_view kUnitList = "ms, s, sec, min, m, h, hour, d, day, w, week";

// "5m", "1.5h", "250ms", "1h 30min", "2 days" (after the sign) -> a duration
// in ns, or nullopt.
std::optional<int64_t> ParseDuration(std::string_view s, std::string* why) {
  auto skip_space = [&] {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  };
  skip_space();
  if (s.empty()) {
    *why = "a relative time is a number and a unit, like -30s, -5min, -2h or -1d";
    return std::nullopt;
  }
  double total = 0;
  while (!s.empty()) {
    size_t unit_at = s.find_first_not_of("0123456789.");
    std::string_view number = s.substr(0, unit_at);
    double amount = 0;
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), amount);
    if (number.empty() || ec != std::errc() || p != number.data() + number.size()) {
      *why = "a relative time is a number and a unit, like -30s, -5min, -2h or -1d";
      return std::nullopt;
    }
    s.remove_prefix(number.size());
    skip_space();
    size_t unit_end = s.find_first_of("0123456789. ");
    std::string_view unit = s.substr(0, unit_end);
    s.remove_prefix(unit.size());
    skip_space();
    std::optional<double> scale = UnitScale(unit);
    if (!scale) {
      *why = unit.empty() ? fmt::format("a relative time needs a unit: {}", kUnitList)
                          : fmt::format("unknown time unit '{}' (use {})", unit, kUnitList);
      return std::nullopt;
    }
    total += amount * *scale;
    if (total > 1e18) {
      *why = "relative time too large";
      return std::nullopt;
    }
  }
  return static_cast<int64_t>(total);
}

// Local midnight `days_from_today` days from the day of `now_ns`.
std::optional<int64_t> LocalMidnight(int64_t now_ns, int days_from_today) {
  time_t now = static_cast<time_t>(SplitNs(now_ns).sec);
  std::tm tm{};
  if (localtime_r(&now, &tm) == nullptr) return std::nullopt;
  tm.tm_mday += days_from_today;  // mktime carries into months and years
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  tm.tm_isdst = -1;
  time_t sec = mktime(&tm);
  if (sec == static_cast<time_t>(-1)) return std::nullopt;
  return static_cast<int64_t>(sec) * kNsPerSec;
}

// "05:14", "05:14:41", "05:14:41.5": that time of today, local.
std::optional<int64_t> ParseTimeOfDay(std::string_view text, int64_t now_ns) {
  Scanner in(text);
  int hour = 0, minute = 0, second = 0;
  int64_t frac_ns = 0;
  if (!in.TakeDigits(2, &hour) || !in.Take(':') || !in.TakeDigits(2, &minute)) {
    return std::nullopt;
  }
  if (in.Take(':')) {
    if (!in.TakeDigits(2, &second)) return std::nullopt;
    if (in.Take('.') && !in.TakeFraction(&frac_ns)) return std::nullopt;
  }
  if (!in.done() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  time_t now = static_cast<time_t>(SplitNs(now_ns).sec);
  std::tm tm{};
  if (localtime_r(&now, &tm) == nullptr) return std::nullopt;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  tm.tm_isdst = -1;
  time_t sec = mktime(&tm);
  if (sec == static_cast<time_t>(-1)) return std::nullopt;
  return static_cast<int64_t>(sec) * kNsPerSec + frac_ns;
}

// Export and replay format a time per event, and neighbouring events share
// their second: the date and clock part is computed once per second.
struct SecondCache {
  time_t sec = 0;
  bool valid = false;
  std::string text;  // "2026-01-15T10:30:00" or "2026-01-15 11:30:00"
};

const std::string& UtcSecond(time_t sec) {
  thread_local SecondCache cache;
  if (!cache.valid || cache.sec != sec) {
    std::tm tm{};
    gmtime_r(&sec, &tm);
    cache.text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900,
                             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cache.sec = sec;
    cache.valid = true;
  }
  return cache.text;
}

const std::string& LocalSecond(time_t sec) {
  thread_local SecondCache cache;
  if (!cache.valid || cache.sec != sec) {
    std::tm tm{};
    localtime_r(&sec, &tm);
    cache.text = fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900,
                             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cache.sec = sec;
    cache.valid = true;
  }
  return cache.text;
}

}  // namespace

char* QuotedUtcTo(char* buf, int64_t ns) {
  Split t = SplitNs(ns);
  const std::string& second = UtcSecond(t.sec);
  char* p = buf;
  *p++ = '"';
  p = std::copy(second.begin(), second.end(), p);
  *p++ = '.';
  // Nine digits of nanoseconds, zero-padded.
  auto frac = static_cast<uint32_t>(t.frac_ns);
  for (int i = 8; i >= 0; --i) {
    p[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  p += 9;
  *p++ = 'Z';
  *p++ = '"';
  return p;
}

std::string FormatUtc(int64_t ns) {
  char buf[kMaxQuotedUtc];
  char* end = QuotedUtcTo(buf, ns);
  return std::string(buf + 1, end - 1);  // without the quotes
}

std::string FormatLocalMs(int64_t ns) {
  Split t = SplitNs(ns);
  return fmt::format("{}.{:03}", LocalSecond(t.sec), t.frac_ns / 1'000'000);
}

std::string FormatUtcMs(int64_t ns) {
  Split t = SplitNs(ns);
  std::string out = fmt::format("{}.{:03}", UtcSecond(t.sec), t.frac_ns / 1'000'000);
  out[10] = ' ';  // "2026-01-15T10:30:00" -> "2026-01-15 10:30:00"
  return out;
}

std::optional<int64_t> ParseAbsoluteTime(std::string_view text) {
  Scanner in(text);
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  int64_t frac_ns = 0;
  if (!in.TakeDigits(4, &year) || !in.Take('-') || !in.TakeDigits(2, &month) || !in.Take('-') ||
      !in.TakeDigits(2, &day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;

  bool utc = false;
  int64_t offset_sec = 0;
  if (!in.done()) {
    if (!in.Take('T') && !in.Take('t') && !in.Take(' ')) return std::nullopt;
    if (!in.TakeDigits(2, &hour) || !in.Take(':') || !in.TakeDigits(2, &minute)) {
      return std::nullopt;
    }
    if (in.Take(':')) {
      if (!in.TakeDigits(2, &second)) return std::nullopt;
      if (in.Take('.') && !in.TakeFraction(&frac_ns)) return std::nullopt;
    }
    if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
    if (in.Take('Z') || in.Take('z')) {
      utc = true;
    } else if (in.peek() == '+' || in.peek() == '-') {
      int sign = in.Take('+') ? 1 : (in.Take('-'), -1);
      int oh = 0, om = 0;
      if (!in.TakeDigits(2, &oh) || !in.Take(':') || !in.TakeDigits(2, &om) || oh > 23 || om > 59) {
        return std::nullopt;
      }
      utc = true;
      offset_sec = sign * (oh * 3600 + om * 60);
    }
    if (!in.done()) return std::nullopt;
  }

  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  time_t sec;
  if (utc) {
    sec = timegm(&tm) - offset_sec;
  } else {
    tm.tm_isdst = -1;  // let the zone rules decide
    sec = mktime(&tm);
  }
  // Times outside what int64 nanoseconds can hold (before 1677 or after 2262)
  // are refused rather than wrapped.
  const __int128 ns = static_cast<__int128>(sec) * kNsPerSec + frac_ns;
  if (ns < std::numeric_limits<int64_t>::min() || ns > std::numeric_limits<int64_t>::max()) {
    return std::nullopt;
  }
  return static_cast<int64_t>(ns);
}

std::optional<TimeSpec> ParseTimeSpec(std::string_view text, int64_t now_ns, std::string* why) {
  if (text == "now") return TimeSpec{now_ns};
  static constexpr std::pair<std::string_view, int> kDays[] = {
      {"today", 0}, {"yesterday", -1}, {"tomorrow", 1}};
  for (const auto& [word, days] : kDays) {
    if (text != word) continue;
    if (auto t = LocalMidnight(now_ns, days)) return TimeSpec{*t};
    *why = fmt::format("cannot find local midnight for '{}'", text);
    return std::nullopt;
  }
  // "5min ago" is "-5min", as in systemd.time(7).
  constexpr std::string_view kAgo = " ago";
  if (text.size() > kAgo.size() && text.ends_with(kAgo) && text[0] != '-' && text[0] != '+') {
    auto ago = ParseDuration(text.substr(0, text.size() - kAgo.size()), why);
    if (!ago) return std::nullopt;
    return TimeSpec{now_ns - *ago};
  }
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    auto span = ParseDuration(text.substr(1), why);
    if (!span) return std::nullopt;
    return TimeSpec{text[0] == '-' ? now_ns - *span : now_ns + *span};
  }
  if (auto t = ParseTimeOfDay(text, now_ns)) return TimeSpec{*t};
  uint64_t seq = 0;
  if (ParseUnsigned(text, &seq)) return TimeSpec{SeqRef{"", seq}};
  // STREAM:SEQ. A time never starts with a letter, so there is no ambiguity.
  if (size_t colon = text.rfind(':');
      colon != std::string_view::npos && colon > 0 && !(text[0] >= '0' && text[0] <= '9')) {
    if (ParseUnsigned(text.substr(colon + 1), &seq)) {
      return TimeSpec{SeqRef{std::string(text.substr(0, colon)), seq}};
    }
  }
  if (auto t = ParseAbsoluteTime(text)) return TimeSpec{*t};
  *why = fmt::format(
      "cannot parse time '{}' (try 2026-01-15T10:30:00Z, \"2026-01-15 10:30:00\", 05:14, "
      "today, yesterday, -5min, now, or a sequence number)",
      text);
  return std::nullopt;
}

}  // namespace blackbox::tools
