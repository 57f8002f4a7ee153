// Permissions: what the manager, the tool and the watchdog create is readable
// by its owner only (whatever the umask), and a journal directory that other
// users can write to (and so plant events in) is refused with one clear line.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>

#include "fault_support.h"

namespace blackbox::faults {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Every directory from `top` down is 0700-or-less and every file 0600-or-less:
// nothing is open to group or others. `except` names files allowed to differ.
void ExpectOwnerOnlyTree(const std::string& top, const std::string& except = "") {
  ASSERT_TRUE(fs::is_directory(top)) << top;
  EXPECT_EQ(ModeOf(top) & 077, 0u) << fmt::format("{} is {:04o}", top, ModeOf(top));
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(top)) {
    const std::string p = entry.path().string();
    if (!except.empty() && entry.path().filename() == except) continue;
    const mode_t mode = ModeOf(p);
    EXPECT_EQ(mode & 077, 0u) << fmt::format("{} is {:04o}", p, mode);
    if (entry.is_regular_file()) ++files;
  }
  EXPECT_GT(files, 0) << top << " holds no file";
}

// Runs the manager app once: a few errors, then a clean exit.
void RunApp(const std::string& root, const std::string& state_file, std::optional<mode_t> mask,
            const std::string& err_path) {
  RunOptions options;
  options.umask = mask;
  Child app({APP_CHILD, root, state_file}, err_path, options);
  ASSERT_EQ(app.ReadLine(30s).value_or("<none>"), "start failures=0") << ReadFile(err_path);
  ASSERT_TRUE(app.WriteLine("errors 3 perm"));
  ASSERT_TRUE(app.WriteLine("quit"));
  auto status = app.Wait(30s);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err_path);
}

ProcessResult Tool(const std::vector<std::string>& args, std::optional<mode_t> mask = {}) {
  std::vector<std::string> argv = {BLACKBOX_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.umask = mask;
  options.extra_env = {"BLACKBOX_JOURNAL="};
  return RunProcess(argv, options);
}

void ExpectOneLineFailure(const ProcessResult& r, const std::string& needle,
                          const std::string& what) {
  EXPECT_FALSE(r.timed_out) << what;
  EXPECT_EQ(r.signal, 0) << what << ": killed by signal " << r.signal;
  EXPECT_NE(r.exit_code, 0) << what << " succeeded";
  EXPECT_EQ(CountLines(r.err), 1) << what << ":\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ":\n" << r.err;
}

TEST(Permissions, ManagerCreatesJournalAndStateFileOwnerOnlyEvenWithUmaskZero) {
  TempDir dir;
  const std::string root = dir / "journal";
  const std::string state_file = dir / "system_state.json";
  RunApp(root, state_file, mode_t{0}, dir / "app.err");
  ExpectOwnerOnlyTree(root);
  EXPECT_EQ(ModeOf(state_file), 0600u);
  // Also when the directories exist already and only the files are new.
  RunApp(root, state_file, mode_t{0}, dir / "app.err");
  ExpectOwnerOnlyTree(root);
  EXPECT_EQ(ModeOf(state_file), 0600u);
}

TEST(Permissions, ToolCreatesStateFilesAndJournalsOwnerOnlyEvenWithUmaskZero) {
  TempDir dir;
  const std::string root = dir / "journal";
  RunApp(root, dir / "app_state.json", std::nullopt, dir / "app.err");

  const std::string state_file = dir / "system_state.json";
  ProcessResult r = Tool({"--journal", root, "export", "--state", state_file}, mode_t{0});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ModeOf(state_file), 0600u);

  // A journal made by import, and the files compaction writes.
  const std::string history = dir / "history.jsonl";
  r = Tool({"--journal", root, "export", "--history", history});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string copy = dir / "copy";
  r = Tool({"--journal", copy, "import", history}, mode_t{0});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOwnerOnlyTree(copy);
  r = Tool({"--journal", copy, "compact", "--keep-events", "1"}, mode_t{0});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOwnerOnlyTree(copy);
}

TEST(Permissions, WatchdogCreatesJournalAndStateDirectoryOwnerOnlyEvenWithUmaskZero) {
  TempDir dir;
  RunOptions options;
  options.umask = mode_t{0};
  ProcessResult r = RunProcess({BLACKBOX_WATCHDOG, "--journal", dir / "journal", "--state-dir",
                                dir / "wd", "--", "/bin/true"},
                               options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOwnerOnlyTree(dir / "journal");
  // The pid file is conventionally world-readable; its directory (0700) is not.
  ExpectOwnerOnlyTree(dir / "wd", "watchdog.pid");
}

const std::vector<std::vector<std::string>>& ToolCommands() {
  static const std::vector<std::vector<std::string>> commands = {
      {"replay"}, {"replay", "--json"},         {"crashes"},
      {"state"},  {"state", "--json"},          {"stats"},
      {"verify"}, {"export", "--history", "-"}, {"compact", "--keep-events", "1"},
  };
  return commands;
}

TEST(Permissions, ToolRefusesAJournalDirectoryWritableByOtherUsers) {
  TempDir dir;
  const std::string root = dir / "journal";
  RunApp(root, dir / "system_state.json", std::nullopt, dir / "app.err");
  ASSERT_EQ(Tool({"--journal", root, "verify"}).exit_code, 0);
  const std::string history = dir / "history.jsonl";
  ASSERT_EQ(Tool({"--journal", root, "export", "--history", history}).exit_code, 0);

  for (mode_t mode : {0777, 0770, 0720, 0702, 01777}) {
    ASSERT_EQ(chmod(root.c_str(), mode), 0);
    for (const auto& command : ToolCommands()) {
      std::vector<std::string> args = {"--journal", root};
      args.insert(args.end(), command.begin(), command.end());
      ExpectOneLineFailure(Tool(args), "writable by other users",
                           fmt::format("{:04o} {}", mode, fmt::join(command, " ")));
    }
    ExpectOneLineFailure(Tool({"--journal", root, "import", "--renumber", history}),
                         "writable by other users", fmt::format("{:04o} import", mode));
  }
  ASSERT_EQ(chmod(root.c_str(), 0700), 0);
  EXPECT_EQ(Tool({"--journal", root, "verify"}).exit_code, 0);
}

TEST(Permissions, ToolRefusesAStreamDirectoryWritableByOtherUsers) {
  // Other users who can write <root>/app can plant events just as well.
  TempDir dir;
  const std::string root = dir / "journal";
  RunApp(root, dir / "system_state.json", std::nullopt, dir / "app.err");
  ASSERT_EQ(chmod((root + "/app").c_str(), 0777), 0);
  ExpectOneLineFailure(Tool({"--journal", root, "state"}), "writable by other users",
                       "state with a world-writable stream directory");
  ExpectOneLineFailure(Tool({"--journal", root, "verify"}), "writable by other users",
                       "verify with a world-writable stream directory");
}

TEST(Permissions, WatchdogRefusesAJournalDirectoryWritableByOtherUsers) {
  TempDir dir;
  const std::string root = dir / "journal";
  fs::create_directory(root);
  ASSERT_EQ(chmod(root.c_str(), 0777), 0);
  ProcessResult r = RunProcess(
      {BLACKBOX_WATCHDOG, "--journal", root, "--state-dir", dir / "wd", "--", "/bin/true"});
  ExpectOneLineFailure(r, "writable by other users", "watchdog");
}

TEST(Permissions, ManagerWithAJournalWritableByOthersKeepsTheAppRunningAndSaysSoOnce) {
  TempDir dir;
  const std::string root = dir / "journal";
  fs::create_directory(root);
  ASSERT_EQ(chmod(root.c_str(), 0777), 0);
  const std::string err_path = dir / "app.err";
  Child app({APP_CHILD, root, dir / "system_state.json"}, err_path);
  auto start = app.ReadLine(30s);
  ASSERT_TRUE(start.has_value()) << ReadFile(err_path);
  EXPECT_NE(*start, "start failures=0");
  ASSERT_TRUE(app.WriteLine("errors 5 refused"));
  auto done = app.ReadLine(30s);
  ASSERT_TRUE(done.has_value() && done->starts_with("done refused")) << done.value_or("EOF");
  ASSERT_TRUE(app.WriteLine("quit"));
  auto status = app.Wait(30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  const std::string err = ReadFile(err_path);
  EXPECT_EQ(CountLines(err), 1) << err;
  EXPECT_NE(err.find("writable by other users"), std::string::npos) << err;
  // No stream was created in the directory others could tamper with.
  EXPECT_FALSE(fs::exists(root + "/app"));
}

TEST(Permissions, ManagerNeverWritesThroughASymlinkPlantedInARefusedJournal) {
  // Another user plants <root>/app.crash -> a file of ours. The manager
  // refuses the journal; it must not open (let alone truncate) the planted
  // crash spill either.
  TempDir dir;
  const std::string root = dir / "journal";
  fs::create_directory(root);
  ASSERT_EQ(chmod(root.c_str(), 0777), 0);
  const std::string victim = dir / "victim";
  WriteFile(victim, "precious\n");
  fs::create_symlink(victim, root + "/app.crash");
  const std::string err_path = dir / "app.err";
  Child app({APP_CHILD, root, dir / "system_state.json"}, err_path);
  ASSERT_TRUE(app.ReadLine(30s).has_value()) << ReadFile(err_path);
  ASSERT_TRUE(app.WriteLine("quit"));
  ASSERT_TRUE(app.Wait(30s).has_value());
  EXPECT_EQ(ReadFile(victim), "precious\n") << "the manager wrote through the planted symlink";
}

}  // namespace
}  // namespace blackbox::faults
