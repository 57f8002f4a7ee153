#include "time_spec.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace blackbox::tools {
namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kT0 = 1768473000LL * kSec;  // 2026-01-15T10:30:00Z

// Local-time parsing and formatting depend on TZ; these tests pin it.
class LocalTimeIsUtc : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    saved_ = tz ? tz : "";
    had_ = tz != nullptr;
    setenv("TZ", "UTC", 1);
    tzset();
  }
  void TearDown() override {
    if (had_) {
      setenv("TZ", saved_.c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }
  std::string saved_;
  bool had_ = false;
};

TEST(FormatUtc, WritesNineFractionalDigitsAndZ) {
  EXPECT_EQ(FormatUtc(kT0 + 123456789), "2026-01-15T10:30:00.123456789Z");
  EXPECT_EQ(FormatUtc(0), "1970-01-01T00:00:00.000000000Z");
}

TEST(FormatUtc, KeepsTheFractionPositiveBeforeTheEpoch) {
  EXPECT_EQ(FormatUtc(-1), "1969-12-31T23:59:59.999999999Z");
}

TEST(ParseAbsoluteTime, IsTheInverseOfFormatUtc) {
  for (int64_t t : {kT0, kT0 + 1, kT0 + 999999999, int64_t{0}, int64_t{-1}, -kSec * 86400 * 400}) {
    auto parsed = ParseAbsoluteTime(FormatUtc(t));
    ASSERT_TRUE(parsed) << FormatUtc(t);
    EXPECT_EQ(*parsed, t);
  }
}

TEST(ParseAbsoluteTime, AppliesRfc3339Offsets) {
  EXPECT_EQ(ParseAbsoluteTime("2026-01-15T12:30:00+02:00"), kT0);
  EXPECT_EQ(ParseAbsoluteTime("2026-01-15T08:00:00.5-02:30"), kT0 + kSec / 2);
  EXPECT_EQ(ParseAbsoluteTime("2026-01-15t10:30:00z"), kT0);
}

TEST_F(LocalTimeIsUtc, ReadsTimesWithoutOffsetAsLocalTime) {
  EXPECT_EQ(ParseAbsoluteTime("2026-01-15 10:30:00"), kT0);
  EXPECT_EQ(ParseAbsoluteTime("2026-01-15 10:30"), kT0);
  EXPECT_EQ(ParseAbsoluteTime("2026-01-15"), kT0 - (10 * 3600 + 30 * 60) * kSec);
}

TEST_F(LocalTimeIsUtc, FormatsLocalTimeWithMilliseconds) {
  EXPECT_EQ(FormatLocalMs(kT0 + 123456789), "2026-01-15 10:30:00.123");
}

TEST(ParseAbsoluteTime, RejectsImpossibleDatesAndJunk) {
  for (const char* bad : {"2026-02-30", "2026-13-01", "2026-01-15T25:00:00Z", "2026-01-15T10:30Zx",
                          "yesterday", "", "2026-1-5", "2026-01-15T10:30:00+2"}) {
    EXPECT_FALSE(ParseAbsoluteTime(bad)) << bad;
  }
  EXPECT_TRUE(ParseAbsoluteTime("2024-02-29"));  // a leap day
  EXPECT_FALSE(ParseAbsoluteTime("2025-02-29"));
}

TEST(ParseTimeSpec, ReadsRelativeTimesAgainstNow) {
  std::string why;
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("-5m", kT0, &why)), kT0 - 300 * kSec);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("-1.5h", kT0, &why)), kT0 - 5400 * kSec);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("-250ms", kT0, &why)), kT0 - kSec / 4);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("-1d", kT0, &why)), kT0 - 86400 * kSec);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("now", kT0, &why)), kT0);
}

TEST(ParseTimeSpec, ReadsBareNumbersAndStreamPrefixesAsSequenceNumbers) {
  std::string why;
  auto bare = ParseTimeSpec("120", kT0, &why);
  ASSERT_TRUE(bare);
  EXPECT_EQ(std::get<SeqRef>(*bare).seq, 120u);
  EXPECT_EQ(std::get<SeqRef>(*bare).stream, "");
  auto named = ParseTimeSpec("watchdog:42", kT0, &why);
  ASSERT_TRUE(named);
  EXPECT_EQ(std::get<SeqRef>(*named).stream, "watchdog");
  EXPECT_EQ(std::get<SeqRef>(*named).seq, 42u);
}

TEST(ParseTimeSpec, ExplainsWhatItCouldNotParse) {
  std::string why;
  EXPECT_FALSE(ParseTimeSpec("-5", kT0, &why));
  EXPECT_NE(why.find("unit"), std::string::npos) << why;
  EXPECT_FALSE(ParseTimeSpec("-5y", kT0, &why));
  EXPECT_NE(why.find("'y'"), std::string::npos) << why;
  EXPECT_FALSE(ParseTimeSpec("last tuesday", kT0, &why));
  EXPECT_NE(why.find("last tuesday"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos);
}

TEST(ParseTimeSpec, ReadsSystemdsSpelledUnits) {
  std::string why;
  auto ago = [&](const char* text) {
    auto spec = ParseTimeSpec(text, kT0, &why);
    EXPECT_TRUE(spec) << text << ": " << why;
    return spec ? kT0 - std::get<int64_t>(*spec) : 0;
  };
  for (const char* s : {"-5min", "-5minutes", "-5minute", "-300s", "-300sec", "-300seconds",
                        "-5 min", "5min ago", "5 minutes ago"}) {
    EXPECT_EQ(ago(s), 300 * kSec) << s;
  }
  for (const char* s : {"-2h", "-2hours", "-2hour", "-2hr", "-120min"}) {
    EXPECT_EQ(ago(s), 7200 * kSec) << s;
  }
  for (const char* s : {"-1w", "-1week", "-1weeks", "-7d", "-7days", "-7day"}) {
    EXPECT_EQ(ago(s), 7 * 86400 * kSec) << s;
  }
  EXPECT_EQ(ago("-1h30min"), 5400 * kSec);
  EXPECT_EQ(ago("-1h 30min"), 5400 * kSec);
  EXPECT_EQ(ago("-1second"), kSec);
  EXPECT_EQ(ago("-250msec"), kSec / 4);
}

TEST(ParseTimeSpec, ReadsAPlusAsTheFuture) {
  std::string why;
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("+5min", kT0, &why)), kT0 + 300 * kSec);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("+1d", kT0, &why)), kT0 + 86400 * kSec);
  EXPECT_FALSE(ParseTimeSpec("+5", kT0, &why));
  EXPECT_NE(why.find("unit"), std::string::npos) << why;
}

// now = 2026-01-15T10:30:00Z, read in two zones: local midnight is the
// zone's, not UTC's.
TEST_F(LocalTimeIsUtc, ReadsTodayYesterdayAndTomorrowAsLocalMidnight) {
  std::string why;
  const int64_t midnight = ParseAbsoluteTime("2026-01-15T00:00:00Z").value();
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("today", kT0, &why)), midnight);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("yesterday", kT0, &why)), midnight - 86400 * kSec);
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("tomorrow", kT0, &why)), midnight + 86400 * kSec);
  // Across a month's end.
  const int64_t feb1 = ParseAbsoluteTime("2026-02-01T12:00:00Z").value();
  EXPECT_EQ(FormatUtc(std::get<int64_t>(*ParseTimeSpec("yesterday", feb1, &why))),
            "2026-01-31T00:00:00.000000000Z");

  setenv("TZ", "JST-9", 1);  // 2026-01-15T10:30Z is 19:30 in Tokyo
  tzset();
  EXPECT_EQ(std::get<int64_t>(*ParseTimeSpec("today", kT0, &why)), midnight - 9 * 3600 * kSec);
}

TEST_F(LocalTimeIsUtc, ReadsABareTimeOfDayAsTodayLocal) {
  std::string why;
  EXPECT_EQ(FormatUtc(std::get<int64_t>(*ParseTimeSpec("05:14:41", kT0, &why))),
            "2026-01-15T05:14:41.000000000Z");
  EXPECT_EQ(FormatUtc(std::get<int64_t>(*ParseTimeSpec("05:14", kT0, &why))),
            "2026-01-15T05:14:00.000000000Z");
  EXPECT_EQ(FormatUtc(std::get<int64_t>(*ParseTimeSpec("23:59:59.5", kT0, &why))),
            "2026-01-15T23:59:59.500000000Z");
  setenv("TZ", "JST-9", 1);
  tzset();
  EXPECT_EQ(FormatUtc(std::get<int64_t>(*ParseTimeSpec("05:14", kT0, &why))),
            "2026-01-14T20:14:00.000000000Z");
  for (const char* bad : {"25:00", "05:61", "5:14", "05:14:", "05:14x"}) {
    EXPECT_FALSE(ParseTimeSpec(bad, kT0, &why)) << bad;
  }
}

}  // namespace
}  // namespace blackbox::tools
