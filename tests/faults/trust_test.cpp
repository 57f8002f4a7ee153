// Root trusts only its own files: a state directory, journal, log file or
// crash spill that another user could have prepared is refused (or not
// followed), and --stop signals only the watchdog that holds the lock. Other
// users are stood in for by chown to uid 65534 (nobody) and by running a
// command as that uid; the tests run as root.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "fault_support.h"

namespace blackbox::faults {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uid_t kOther = 65534;
const std::string kVictimText = "precious\n";

ProcessResult Watchdog(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BLACKBOX_WATCHDOG};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.extra_env = {"BLACKBOX_JOURNAL="};
  return RunProcess(argv, options);
}

void ExpectRefused(const ProcessResult& r, int status, const std::string& needle,
                   const std::string& what) {
  EXPECT_FALSE(r.timed_out) << what;
  EXPECT_EQ(r.signal, 0) << what << ": killed by signal " << r.signal;
  EXPECT_EQ(r.exit_code, status) << what << ":\n" << r.err;
  EXPECT_EQ(CountLines(r.err), 1) << what << ":\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ":\n" << r.err;
}

// A watchdog.toml whose command leaves `marker` behind when it runs.
void PlantConfig(const std::string& path, const std::string& marker) {
  WriteFile(path, fmt::format("command = [\"/usr/bin/touch\", \"{}\"]\n", marker));
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
}

TEST(Trust, StateDirectoryWritableByOthersIsRefusedAndItsConfigNotRun) {
  TempDir dir;
  const std::string wd = dir / "wd";
  fs::create_directory(wd);
  ASSERT_EQ(chmod(wd.c_str(), 0777), 0);
  const std::string marker = dir / "ran";
  PlantConfig(wd + "/watchdog.toml", marker);
  const std::string victim = dir / "victim";
  WriteFile(victim, kVictimText);
  fs::create_symlink(victim, wd + "/watchdog.pid");
  ProcessResult r = Watchdog({"--journal", dir / "journal", "--state-dir", wd});
  ExpectRefused(r, 2, "writable by other users", "0777 state directory");
  EXPECT_FALSE(fs::exists(marker)) << "the planted command ran";
  EXPECT_EQ(ReadFile(victim), kVictimText);
}

TEST(Trust, StateDirectoryOfAnotherUserOrASymlinkIsRefused) {
  TempDir dir;
  const std::string wd = dir / "wd";
  fs::create_directory(wd);
  ASSERT_EQ(chmod(wd.c_str(), 0700), 0);
  const std::string marker = dir / "ran";
  PlantConfig(wd + "/watchdog.toml", marker);
  ASSERT_EQ(chown((wd + "/watchdog.toml").c_str(), kOther, kOther), 0);
  ASSERT_EQ(chown(wd.c_str(), kOther, kOther), 0);
  ExpectRefused(Watchdog({"--journal", dir / "journal", "--state-dir", wd}), 2,
                "not owned by the running user", "state directory of uid 65534");
  EXPECT_FALSE(fs::exists(marker)) << "the planted command ran";

  const std::string own = dir / "own";
  fs::create_directory(own);
  fs::create_directory_symlink(own, dir / "link");
  ExpectRefused(
      Watchdog({"--journal", dir / "journal", "--state-dir", dir / "link", "--", "/bin/true"}), 2,
      "symbolic link", "symlinked state directory");
}

TEST(Trust, SavedConfigurationOfAnotherUserIsNotLoaded) {
  TempDir dir;
  const std::string wd = dir / "wd";
  fs::create_directory(wd);
  ASSERT_EQ(chmod(wd.c_str(), 0700), 0);
  const std::string marker = dir / "ran";
  PlantConfig(wd + "/watchdog.toml", marker);
  ASSERT_EQ(chown((wd + "/watchdog.toml").c_str(), kOther, kOther), 0);
  ProcessResult r = Watchdog({"--journal", dir / "journal", "--state-dir", wd});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not by the running user"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(marker)) << "the command of another user's configuration ran";
}

TEST(Trust, SymlinksAtThePidFileAndTheConfigTemporaryAreNotFollowed) {
  TempDir dir;
  const std::string wd = dir / "wd";
  fs::create_directory(wd);
  ASSERT_EQ(chmod(wd.c_str(), 0700), 0);
  const std::string victim = dir / "victim";
  WriteFile(victim, kVictimText);
  ASSERT_EQ(chmod(victim.c_str(), 0600), 0);

  fs::create_symlink(victim, wd + "/watchdog.toml.tmp");
  ProcessResult r = Watchdog({"--journal", dir / "journal", "--state-dir", wd, "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(victim), kVictimText) << "the configuration was written through a symlink";
  EXPECT_TRUE(fs::is_regular_file(wd + "/watchdog.toml"));

  fs::remove(wd + "/watchdog.pid");
  fs::create_symlink(victim, wd + "/watchdog.pid");
  r = Watchdog({"--journal", dir / "journal", "--state-dir", wd, "--", "/bin/true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(victim), kVictimText) << "the pid was written through a symlink";
}

TEST(Trust, PidFileIsOwnerOnlyAndRecordsTheStartTime) {
  TempDir dir;
  const std::string wd = dir / "wd";
  ProcessResult r = Watchdog({"--journal", dir / "journal", "--state-dir", wd, "--", "/bin/true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(lstat((wd + "/watchdog.pid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string text = ReadFile(wd + "/watchdog.pid");
  EXPECT_NE(text.find(' '), std::string::npos) << "no start time in '" << text << "'";
}

TEST(Trust, LogFileThatIsASymlinkOrAnotherUsersFileIsRefused) {
  TempDir dir;
  const std::string victim = dir / "victim";
  WriteFile(victim, kVictimText);
  ASSERT_EQ(chmod(victim.c_str(), 0600), 0);
  const std::string log = dir / "child.log";
  fs::create_symlink(victim, log);
  ProcessResult r = Watchdog({"--journal", dir / "journal", "--state-dir", dir / "wd", "--log-file",
                              log, "--", "/bin/echo", "hello"});
  ExpectRefused(r, 1, "symbolic link", "--log-file symlink");
  EXPECT_EQ(ReadFile(victim), kVictimText);

  fs::remove(log);
  WriteFile(log, kVictimText);
  ASSERT_EQ(chown(log.c_str(), kOther, kOther), 0);
  r = Watchdog({"--journal", dir / "journal", "--state-dir", dir / "wd", "--log-file", log, "--",
                "/bin/echo", "hello"});
  ExpectRefused(r, 1, "not a regular file of the running user", "--log-file of uid 65534");
  EXPECT_EQ(ReadFile(log), kVictimText);
}

TEST(Trust, JournalOfAnotherUserIsRefusedForWritingButReadable) {
  TempDir dir;
  const std::string root = dir / "journal";
  ASSERT_EQ(Watchdog({"--journal", root, "--state-dir", dir / "wd", "--", "/bin/true"}).exit_code,
            0);
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    ASSERT_EQ(lchown(entry.path().c_str(), kOther, kOther), 0);
  }
  ASSERT_EQ(chown(root.c_str(), kOther, kOther), 0);
  ExpectRefused(Watchdog({"--journal", root, "--state-dir", dir / "wd", "--", "/bin/true"}), 2,
                "not by the running user", "journal of uid 65534");
  // Reading it is an operator's normal action.
  RunOptions options;
  ProcessResult read = RunProcess({BLACKBOX_TOOL, "--journal", root, "replay"}, options);
  EXPECT_EQ(read.exit_code, 0) << read.err;
  // The tool's own writers refuse it like the watchdog.
  ProcessResult compact =
      RunProcess({BLACKBOX_TOOL, "--journal", root, "compact", "--keep-events", "1"}, options);
  EXPECT_NE(compact.exit_code, 0) << compact.out;
  EXPECT_EQ(CountLines(compact.err), 1) << compact.err;
  EXPECT_NE(compact.err.find("not by the running user"), std::string::npos) << compact.err;
}

TEST(Trust, SymlinkedStreamDirectoryIsRefused) {
  TempDir dir;
  const std::string root = dir / "journal";
  fs::create_directory(root);
  ASSERT_EQ(chmod(root.c_str(), 0700), 0);
  const std::string target = dir / "elsewhere";
  fs::create_directory(target);
  fs::create_directory_symlink(target, root + "/watchdog");
  ExpectRefused(Watchdog({"--journal", root, "--state-dir", dir / "wd", "--", "/bin/true"}), 2,
                "symbolic link", "symlinked stream directory");
  EXPECT_TRUE(fs::is_empty(target)) << "a database was written into the link's target";
}

// Waits for the watchdog's pid file to name a pid.
std::string WaitForPidFile(const std::string& path) {
  for (int i = 0; i < 300; ++i) {
    std::string text = fs::exists(path) ? ReadFile(path) : "";
    if (!text.empty() && text.back() == '\n') return text;
    std::this_thread::sleep_for(20ms);
  }
  return "";
}

TEST(Trust, StopDoesNotSignalAProcessThatReusedThePid) {
  TempDir dir;
  const std::string wd = dir / "wd";
  Child watchdog({BLACKBOX_WATCHDOG, "--journal", dir / "journal", "--state-dir", wd, "--",
                  "/bin/sleep", "60"},
                 dir / "wd.err");
  const std::string pid_file = wd + "/watchdog.pid";
  const std::string original = WaitForPidFile(pid_file);
  ASSERT_FALSE(original.empty()) << ReadFile(dir / "wd.err");

  // An unrelated live process stands in for one that reused the pid: the
  // file names it, with the start time of the watchdog that wrote it.
  Child bystander({"/bin/sleep", "60"}, dir / "sleep.err");
  const size_t space = original.find(' ');
  const std::string rest = space == std::string::npos ? "\n" : original.substr(space);
  WriteFile(pid_file, fmt::format("{}{}", bystander.pid(), rest));
  ProcessResult r = Watchdog({"--state-dir", wd, "--journal", dir / "journal", "--stop"});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("not the watchdog"), std::string::npos) << r.err;
  EXPECT_FALSE(bystander.Wait(200ms).has_value()) << "--stop killed an unrelated process";

  // The pid of a file written by an older version (no start time) is not
  // trusted either.
  WriteFile(pid_file, fmt::format("{}\n", bystander.pid()));
  r = Watchdog({"--state-dir", wd, "--journal", dir / "journal", "--stop"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(bystander.Wait(200ms).has_value()) << "--stop killed an unrelated process";

  WriteFile(pid_file, original);
  r = Watchdog({"--state-dir", wd, "--journal", dir / "journal", "--stop"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(watchdog.Wait(30s).has_value());
}

TEST(Trust, StatusAndStopByAnotherUserGiveOneLineNotACrash) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  const std::string wd = dir / "wd";
  ASSERT_EQ(
      Watchdog({"--journal", dir / "journal", "--state-dir", wd, "--", "/bin/true"}).exit_code, 0);
  ASSERT_EQ(chmod(wd.c_str(), 0700), 0);
  for (const char* command : {"--status", "--stop"}) {
    RunOptions options;
    options.extra_env = {"BLACKBOX_JOURNAL="};
    ProcessResult r =
        RunProcess({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    BLACKBOX_WATCHDOG, command, "--state-dir", wd, "--journal", dir / "journal"},
                   options);
    EXPECT_EQ(r.signal, 0) << command << ":\n" << r.err;
    EXPECT_NE(r.exit_code, -1) << command;
    EXPECT_LE(CountLines(r.err), 1) << command << ":\n" << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << command << ":\n" << r.err;
  }
}

TEST(Trust, CrashSpillThatCannotBeOpenedSafelyIsReported) {
  TempDir dir;
  const std::string root = dir / "journal";
  fs::create_directory(root);
  ASSERT_EQ(chmod(root.c_str(), 0700), 0);
  const std::string victim = dir / "victim";
  WriteFile(victim, kVictimText);
  fs::create_symlink(victim, root + "/app.crash");
  const std::string err_path = dir / "app.err";
  Child app({APP_CHILD, root, dir / "system_state.json"}, err_path);
  ASSERT_TRUE(app.ReadLine(30s).has_value()) << ReadFile(err_path);
  ASSERT_TRUE(app.WriteLine("quit"));
  ASSERT_TRUE(app.Wait(30s).has_value());
  const std::string err = ReadFile(err_path);
  EXPECT_EQ(CountLines(err), 1) << err;
  EXPECT_NE(err.find("crash capture is off"), std::string::npos) << err;
  EXPECT_EQ(ReadFile(victim), kVictimText);
  RunOptions options;
  ProcessResult replay = RunProcess({BLACKBOX_TOOL, "--journal", root, "replay"}, options);
  EXPECT_NE(replay.out.find("crash capture is off"), std::string::npos) << replay.out;
}

}  // namespace
}  // namespace blackbox::faults
