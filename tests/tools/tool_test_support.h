// Shared by the tests of the `blackbox` tool: a deterministic fixture journal,
// a temporary directory, and a way to run the real binary.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "process.h"
#include "temp_dir.h"

namespace blackbox::tools::testing {

// 2026-01-15T10:30:00Z: the fixture's story starts here.
inline constexpr int64_t kT0 = 1768473000LL * 1'000'000'000;
inline constexpr int64_t kMs = 1'000'000;
inline constexpr int64_t kSec = 1'000'000'000;

using TempDir = ::blackbox::testing::TempDir;  // tests/support/temp_dir.h

// Writes the fixture: an "app" and a "watchdog" stream telling one incident
// (start, gauges, two errors, a recovery, a segfault seen by both sides, a
// restart, a failed cleanup, a stop), with every event type, explicit times,
// mono times and pids. The same bytes on every run.
void WriteFixtureJournal(const std::string& root);

// The fixture's event counts.
inline constexpr int kFixtureAppEvents = 15;
inline constexpr int kFixtureWatchdogEvents = 8;
// Time of the fixture's first error ("price out of range"), and of the second.
inline constexpr int64_t kFirstErrorNs = kT0 + 2 * kSec;
inline constexpr int64_t kSecondErrorNs = kT0 + 4900 * kMs;

// Appends `count` health events to stream `stream` (for size and speed tests).
void AppendHealthEvents(const std::string& root, const std::string& stream, int count,
                        int64_t start_ns);

// How the tool ended and what it wrote (tests/support/process.h).
using ToolResult = ::blackbox::testing::ProcessResult;

// Runs the blackbox binary with `args` (TZ=UTC, no colour, no
// BLACKBOX_JOURNAL, plus `extra_env` "KEY=VALUE" entries), feeding
// `stdin_path` when given, and waits for it (killed past kToolTimeout).
ToolResult RunTool(const std::vector<std::string>& args, const std::string& stdin_path = "",
                   const std::vector<std::string>& extra_env = {});

// Longer than any run of the tool in these tests, shorter than a test's own
// timeout (120 s): a hung tool fails its test with signal 9.
inline constexpr std::chrono::seconds kToolTimeout{100};

// The environment RunTool gives the tool.
std::vector<std::string> ToolEnvironment();

using ::blackbox::testing::ReadFile;
using ::blackbox::testing::WriteFile;
std::vector<std::string> Lines(const std::string& text);

}  // namespace blackbox::tools::testing
