#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "blackbox/state_io.h"
#include "event_builders.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

using namespace testing;
namespace fs = std::filesystem;

TEST(SystemStateJson, HasTheSeedsKeysFirstInTheSeedsOrder) {
  Folder f;
  f.Add(kAppStream, 100 * kSecond, 1, Lifecycle(fb::Phase::Starting))
      .Add(kAppStream, 101 * kSecond, 1, Lifecycle(fb::Phase::Running))
      .Add(kAppStream, 102 * kSecond, 1, Gauge("active_connections", 2))
      .Add(kAppStream, 103 * kSecond, 1, Gauge("active_positions", 1));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(SystemStateJson(f.state));
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  std::vector<std::string> seed = {"timestamp",
                                   "status",
                                   "uptime",
                                   "memory_usage",
                                   "cpu_usage",
                                   "active_connections",
                                   "active_positions",
                                   "last_error",
                                   "restart_count",
                                   "max_restarts",
                                   "recovery_attempts",
                                   "max_recovery_attempts"};
  ASSERT_GE(keys.size(), seed.size());
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + seed.size()), seed);
  EXPECT_EQ(keys[seed.size()], "gauges");

  EXPECT_EQ(j["status"], "running");
  EXPECT_DOUBLE_EQ(j["uptime"].get<double>(), 3.0);
  EXPECT_TRUE(j["active_connections"].is_number_integer());
  EXPECT_EQ(j["active_connections"], 2);
  EXPECT_EQ(j["active_positions"], 1);
  EXPECT_TRUE(j["last_error"].is_null());
  EXPECT_EQ(j["max_restarts"], 5);
  EXPECT_EQ(j["max_recovery_attempts"], 3);
  // "2024-01-15T10:30:00": no zone, no fraction.
  std::string ts = j["timestamp"];
  ASSERT_EQ(ts.size(), 19u) << ts;
  EXPECT_EQ(ts[4], '-');
  EXPECT_EQ(ts[10], 'T');
  EXPECT_EQ(ts[13], ':');
}

TEST(SystemStateJson, LastErrorIsTheMessage) {
  Folder f;
  f.Add(kAppStream, 1, 1, Error("order_execution", "std::runtime_error", "broker down"));
  nlohmann::json j = nlohmann::json::parse(SystemStateJson(f.state, -1));
  EXPECT_EQ(j["last_error"], "broker down");
  EXPECT_EQ(j["status"], "error");
  EXPECT_EQ(j["last_error_detail"]["context"], "order_execution");
}

TEST(SystemStateJson, StatusNamesAreTheSeeds) {
  EXPECT_EQ(SeedStatusName(fb::Phase::Initializing), "initializing");
  EXPECT_EQ(SeedStatusName(fb::Phase::Starting), "initializing");
  EXPECT_EQ(SeedStatusName(fb::Phase::Recovering), "recovering");
  EXPECT_EQ(SeedStatusName(fb::Phase::Stopped), "stopped");
  EXPECT_EQ(SeedStatusName(fb::Phase::Failed), "failed");
}

TEST(SystemStateJson, InvalidUtf8InAMessageStillGivesValidJson) {
  Folder f;
  f.Add(kAppStream, 1, 1, Error("c", "t", std::string("bad \xff\xfe bytes")));
  EXPECT_NO_THROW(nlohmann::json::parse(SystemStateJson(f.state)));
}

class StateFileTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  fs::path dir_ = tmp_.path();
};

TEST_F(StateFileTest, WritesMode0600AndLeavesNoTempFiles) {
  std::string path = (dir_ / "system_state.json").string();
  {
    std::ofstream old(path);
    old << "old contents";
  }
  ::chmod(path.c_str(), 0644);
  Folder f;
  f.Add(kAppStream, 1, 1, Gauge("active_positions", 4));
  ASSERT_TRUE(WriteStateFileAtomically(path, f.state).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["active_positions"], 4);
  int files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(StateFileTest, MissingDirectoryIsAnErrorNotACrash) {
  Status st = WriteStateFileAtomically((dir_ / "nope" / "s.json").string(), SystemState{});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("nope"), std::string::npos);
}

}  // namespace
}  // namespace blackbox
