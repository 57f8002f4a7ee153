// The watchdog's HTTP module (watchdog/src/http_module.h) with the real
// binary: loaded only when --metrics-listen or --alertmanager asks for it,
// found only beside the executable, and its absence refused at start.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "process.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using blackbox::testing::ReadFile;
using blackbox::testing::RunProcess;
using blackbox::testing::TempDir;

const std::string kWatchdog = BLACKBOX_WATCHDOG_BIN;

// The mappings of a watchdog that supervises `sleep`, once its child runs
// (the module, when it is needed, is loaded before the child is started).
std::string MapsOfARunningWatchdog(const TempDir& dir, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {kWatchdog, "--state-dir", dir / "wd", "--journal",
                                   dir / "journal"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {"--", "/bin/sleep", "30"});
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = blackbox::testing::StartProcess(argv, {}, null, null, null);
  close(null);
  const std::string children =
      "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
  std::string maps;
  for (int i = 0; i < 500; ++i) {
    if (!ReadFile(children).empty()) {
      maps = ReadFile("/proc/" + std::to_string(pid) + "/maps");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return maps;
}

TEST(HttpModule, AWatchdogWithoutMonitoringMapsNeitherItNorOpenSsl) {
  TempDir dir;
  std::string maps = MapsOfARunningWatchdog(dir, {});
  ASSERT_FALSE(maps.empty()) << "the child never ran";
  EXPECT_EQ(maps.find("libblackbox_watchdog_http"), std::string::npos);
  EXPECT_EQ(maps.find("libcrypto"), std::string::npos);
  EXPECT_EQ(maps.find("libssl"), std::string::npos);
}

TEST(HttpModule, MetricsLoadIt) {
  TempDir dir;
  std::string maps = MapsOfARunningWatchdog(dir, {"--metrics-listen", "127.0.0.1:0"});
  ASSERT_FALSE(maps.empty()) << "the child never ran";
  EXPECT_NE(maps.find("libblackbox_watchdog_http"), std::string::npos);
}

// A watchdog copied away from its module runs without monitoring, and
// refuses monitoring at start with one line that names the option.
TEST(HttpModule, WithoutItMonitoringIsRefusedAtStart) {
  TempDir dir;
  const std::string copy = dir / "blackbox-watchdog";
  fs::copy_file(kWatchdog, copy);
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {copy, "--state-dir", dir / "wd", "--journal", dir / "journal"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {"--", "/bin/true"});
    return RunProcess(argv);
  };
  auto plain = run({});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;

  auto metrics = run({"--metrics-listen", "127.0.0.1:0"});
  EXPECT_EQ(metrics.exit_code, 2);
  EXPECT_EQ(metrics.err.find("blackbox-watchdog: --metrics-listen: its HTTP module "), 0u)
      << metrics.err;
  EXPECT_EQ(std::count(metrics.err.begin(), metrics.err.end(), '\n'), 1) << metrics.err;

  auto alerts = run({"--alertmanager", "http://127.0.0.1:9"});
  EXPECT_EQ(alerts.exit_code, 2);
  EXPECT_EQ(alerts.err.find("blackbox-watchdog: --alertmanager: its HTTP module "), 0u)
      << alerts.err;
  // Refused before anything was saved: a plain start in the same state
  // directory still works.
  EXPECT_EQ(run({}).exit_code, 0);
}

// A module another user could have written is not loaded.
TEST(HttpModule, AModuleOthersCanWriteIsRefused) {
  TempDir dir;
  const std::string copy = dir / "blackbox-watchdog";
  fs::copy_file(kWatchdog, copy);
  const fs::path module = fs::path(kWatchdog).parent_path() / "libblackbox_watchdog_http.so";
  const std::string planted = dir / "libblackbox_watchdog_http.so";
  fs::copy_file(module, planted);
  fs::permissions(planted, fs::perms::others_write, fs::perm_options::add);
  auto r = RunProcess({copy, "--state-dir", dir / "wd", "--journal", dir / "journal",
                       "--metrics-listen", "127.0.0.1:0", "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is writable by others"), std::string::npos) << r.err;
  fs::permissions(planted, fs::perms::others_write, fs::perm_options::remove);
  r = RunProcess({copy, "--state-dir", dir / "wd", "--journal", dir / "journal", "--metrics-listen",
                  "127.0.0.1:0", "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
