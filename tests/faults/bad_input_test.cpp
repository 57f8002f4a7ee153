// Bad input, each through the real binaries: the watchdog never runs its
// child through a shell; a damaged configuration file, a negative or absurd
// option value, a missing executable and an unreadable journal each get one
// line on stderr and a non-zero status, never a crash.
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

void ExpectOneLineFailure(const ProcessResult& r, const std::string& what,
                          const std::string& needle = "") {
  EXPECT_FALSE(r.timed_out) << what << ": still running after the timeout";
  EXPECT_EQ(r.signal, 0) << what << ": killed by signal " << r.signal << "\n" << r.err;
  EXPECT_NE(r.exit_code, 0) << what << ": exit status 0";
  EXPECT_EQ(CountLines(r.err), 1) << what << ":\n" << r.err;
  if (!needle.empty()) {
    EXPECT_NE(r.err.find(needle), std::string::npos) << what << ":\n" << r.err;
  }
}

class WatchdogInput : public ::testing::Test {
 protected:
  ProcessResult Run(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> argv = {BLACKBOX_WATCHDOG, "--journal", dir_ / "journal",
                                     "--state-dir", dir_ / "wd"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.timeout = timeout;
    options.extra_env = {"BLACKBOX_JOURNAL="};
    return RunProcess(argv, options);
  }
  std::string file(const std::string& name) const { return dir_ / name; }
  TempDir dir_;
};

// Arguments a shell would interpret. Each command substitution or redirection
// would create the file "pwned" in the working directory or in dir_.
std::vector<std::string> ShellBait(const std::string& canary) {
  return {"two words",
          "it's",
          "\"double\"",
          "a;touch " + canary,
          "$(touch " + canary + ")",
          "`touch " + canary + "`",
          "| touch " + canary,
          "&& touch " + canary,
          "> " + canary,
          "line\nbreak",
          "$HOME ${PATH} $0 $$",
          "*",
          "back\\slash",
          "",
          "--help",
          "-- --"};
}

std::string Joined(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) out += a + '\0';
  return out;
}

TEST_F(WatchdogInput, ShellMetacharactersReachTheChildVerbatimFromTheCommandLine) {
  const std::vector<std::string> bait = ShellBait(file("pwned"));
  std::vector<std::string> args = {"--", ARGV_CHILD, file("argv")};
  args.insert(args.end(), bait.begin(), bait.end());
  ProcessResult r = Run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(file("argv")), Joined(bait));
  EXPECT_FALSE(fs::exists(file("pwned"))) << "a shell ran";
}

TEST_F(WatchdogInput, ShellMetacharactersReachTheChildVerbatimFromAConfigFile) {
  const std::vector<std::string> bait = ShellBait(file("pwned"));
  // toml++ writes each string as a TOML basic string, escapes included.
  std::string toml = fmt::format("command = [\"{}\", \"{}\"", ARGV_CHILD, file("argv"));
  for (const std::string& a : bait) {
    std::string escaped;
    for (char c : a) {
      if (c == '"' || c == '\\') escaped += '\\';
      if (c == '\n') {
        escaped += "\\n";
        continue;
      }
      escaped += c;
    }
    toml += ", \"" + escaped + "\"";
  }
  toml += "]\n";
  WriteFile(file("wd.toml"), toml);
  ProcessResult r = Run({"--config", file("wd.toml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(file("argv")), Joined(bait));
  EXPECT_FALSE(fs::exists(file("pwned"))) << "a shell ran";
}

TEST_F(WatchdogInput, AnAppScriptPathWithShellMetacharactersIsExecutedAsOnePath) {
  // The seed's --app-script: one path, spaces and `;` and `$(…)` included.
  fs::create_directories(file("dir with space;$(touch pwned)"));
  const std::string script = file("dir with space;$(touch pwned)/my app's \"child\"");
  fs::copy_file(ARGV_CHILD, script);
  ASSERT_EQ(chmod(script.c_str(), 0700), 0);
  // Started without arguments, the child reports its argv[0] to $ARGV_CHILD_OUT.
  RunOptions options;
  options.extra_env = {"ARGV_CHILD_OUT=" + file("argv0"), "BLACKBOX_JOURNAL="};
  ProcessResult r = RunProcess({BLACKBOX_WATCHDOG, "--journal", file("journal"), "--state-dir",
                                file("wd"), "--app-script", script},
                               options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(file("argv0")), script + '\0');
  EXPECT_FALSE(fs::exists(file("pwned")));
  EXPECT_FALSE(fs::exists("pwned"));
}

// The seed's `--app-script main.py`, run from the folder that holds it: found
// there (not in PATH) and, not being executable, run with python3.
TEST_F(WatchdogInput, AnAppScriptInTheWorkingDirectoryIsRunAndAPythonFileWithPython3) {
  fs::create_directory(file("app"));
  WriteFile(file("app/main.py"), "open('ran', 'w').write('python')\n");
  ASSERT_EQ(chmod(file("app/main.py").c_str(), 0600), 0);
  fs::create_directory(file("app/a-directory"));
  WriteFile(file("app/not-executable"), "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(chmod(file("app/not-executable").c_str(), 0600), 0);
  auto in_app = [&](const std::string& script) {
    RunOptions options;
    options.timeout = 20s;
    options.extra_env = {"BLACKBOX_JOURNAL="};
    return RunProcess(
        {"/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", file("app"), BLACKBOX_WATCHDOG,
         "--journal", file("journal"), "--state-dir", file("wd"), "--app-script", script},
        options);
  };
  ProcessResult r = in_app("main.py");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(file("app/ran")), "python");
  // Each way it cannot run gets its own reason.
  r = in_app("missing.py");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.py: No such file or directory"), std::string::npos) << r.err;
  r = in_app("a-directory");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("a-directory: is a directory"), std::string::npos) << r.err;
  r = in_app("not-executable");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not-executable: is not executable"), std::string::npos) << r.err;
}

TEST_F(WatchdogInput, DamagedConfigurationFilesGetOneLineAndStatusTwo) {
  const std::vector<std::pair<std::string, std::string>> files = {
      {"unterminated string", "max_restarts = 3\ncommand = [\"/bin/true\n"},
      {"binary garbage", std::string("\x7f"
                                     "ELF\x02\x01\x01\0\0\0\xff\xfe garbage",
                                     20)},
      {"not toml at all", "[[[[ this is not toml\n"},
      {"string for a number", "max_restarts = \"ten\"\ncommand = [\"/bin/true\"]\n"},
      {"negative count", "max_restarts = -3\ncommand = [\"/bin/true\"]\n"},
      {"absurd delay", "restart_delay = 1e300\ncommand = [\"/bin/true\"]\n"},
      {"inf delay", "restart_delay = inf\ncommand = [\"/bin/true\"]\n"},
      {"nan memory", "max_memory_mb = nan\ncommand = [\"/bin/true\"]\n"},
      {"number for the command", "command = 5\n"},
      {"table for a string", "journal = { a = 1 }\ncommand = [\"/bin/true\"]\n"},
      {"duplicate key", "max_restarts = 1\nmax_restarts = 2\ncommand = [\"/bin/true\"]\n"},
      {"truncated utf-8", "command = [\"/bin/true\", \"\xe2\x82\"]\n"},
  };
  for (const auto& [what, text] : files) {
    WriteFile(file("bad.toml"), text);
    ExpectOneLineFailure(Run({"--config", file("bad.toml")}), "config: " + what, "--config");
  }
  fs::create_directory(file("a-directory.toml"));
  ExpectOneLineFailure(Run({"--config", file("a-directory.toml")}), "config is a directory",
                       "--config");
  ExpectOneLineFailure(Run({"--config", file("missing.toml")}), "missing config", "--config");
}

TEST_F(WatchdogInput, NegativeOrAbsurdOptionValuesGetOneLineNamingTheOption) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--max-restarts", "-1"},
      {"--max-restarts", "99999999999999999999"},
      {"--max-restarts", "3.5"},
      {"--restart-delay", "1e300"},
      {"--restart-delay", "-5"},
      {"--restart-delay", "inf"},
      {"--restart-delay", "0x10"},
      {"--max-memory", "abc"},
      {"--max-memory", "-1"},
      {"--max-memory", "1e400"},
      {"--max-cpu", "0"},
      {"--max-cpu", "nan"},
      {"--limit-cycles", "-2"},
      {"--stop-timeout", "nan"},
      {"--watchdog-timeout", "-0.5"},
      {"--health-check-interval", "-1"},
      {"--restart-window", "1e300"},
      {"--backoff-max", "-3"},
      {"--log-max-mb", "0"},
      {"--restart", ""},
  };
  for (const auto& [flag, value] : cases) {
    ExpectOneLineFailure(Run({flag, value, "--", "/bin/false"}), flag + " " + value, flag);
  }
}

TEST_F(WatchdogInput, AMissingOrUnrunnableExecutableGetsOneLine) {
  fs::create_directory(file("a-directory"));
  WriteFile(file("not-executable"), "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(chmod(file("not-executable").c_str(), 0600), 0);
  const std::vector<std::vector<std::string>> cases = {
      {"--", file("missing-program")},
      {"--", "no-such-program-on-the-path-at-all"},
      {"--", file("a-directory")},
      {"--", file("not-executable")},
      {"--", ""},
      {"--app-script", file("missing-program")},
  };
  for (const auto& args : cases) {
    ExpectOneLineFailure(Run(args), fmt::format("{}", fmt::join(args, " ")));
  }
}

TEST_F(WatchdogInput, AnUnusableJournalOrStateDirectoryGetsOneLine) {
  WriteFile(file("a-file"), "not a directory\n");
  ProcessResult r = RunProcess({BLACKBOX_WATCHDOG, "--journal", file("a-file"), "--state-dir",
                                file("wd"), "--", "/bin/true"});
  ExpectOneLineFailure(r, "journal is a regular file");
  r = RunProcess({BLACKBOX_WATCHDOG, "--journal", file("journal"), "--state-dir", file("a-file"),
                  "--", "/bin/true"});
  ExpectOneLineFailure(r, "state dir is a regular file");
  // The app stream's database exists but is damaged: the watchdog's own stream
  // is separate, so it must still work.
  fs::create_directories(file("journal2/app"));
  WriteFile(file("journal2/app/CURRENT"), "garbage\n");
  ASSERT_EQ(chmod(file("journal2").c_str(), 0700), 0);
  r = RunProcess({BLACKBOX_WATCHDOG, "--journal", file("journal2"), "--state-dir", file("wd2"),
                  "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Journals that cannot be read, built by hand: a file where a directory is
// expected, and garbage where RocksDB's files should be. (chmod 000 does not
// stop root, so it proves nothing here.)
class UnreadableJournal : public ::testing::Test {
 protected:
  // A real journal with a few events, made by the manager app.
  std::string MakeJournal(const std::string& name) {
    const std::string root = dir_ / name;
    Child app({APP_CHILD, root, dir_ / (name + ".json")}, dir_ / "app.err");
    EXPECT_EQ(app.ReadLine(30s).value_or("<none>"), "start failures=0");
    EXPECT_TRUE(app.WriteLine("errors 3 x"));
    EXPECT_TRUE(app.WriteLine("quit"));
    EXPECT_TRUE(app.Wait(30s).has_value());
    return root;
  }
  static std::string Manifest(const std::string& stream_dir) {
    std::string current = ReadFile(stream_dir + "/CURRENT");
    while (!current.empty() && current.back() == '\n') current.pop_back();
    return stream_dir + "/" + current;
  }
  TempDir dir_;
};

ProcessResult Tool(const std::string& root, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BLACKBOX_TOOL, "--journal", root};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.extra_env = {"BLACKBOX_JOURNAL="};
  options.timeout = 20s;
  return RunProcess(argv, options);
}

TEST_F(UnreadableJournal, EveryCommandGivesOneLineAndNonZeroStatus) {
  struct Case {
    std::string what;
    std::string root;
  };
  std::vector<Case> cases;

  WriteFile(dir_ / "plain-file", "I am not a journal\n");
  cases.push_back({"root is a regular file", dir_ / "plain-file"});
  cases.push_back({"root does not exist", dir_ / "nowhere"});

  std::string root = MakeJournal("garbage-current");
  WriteFile(root + "/app/CURRENT", "\x01\x02garbage\xff\n");
  cases.push_back({"garbage CURRENT", root});

  root = MakeJournal("missing-manifest");
  fs::remove(Manifest(root + "/app"));
  cases.push_back({"CURRENT names a missing MANIFEST", root});

  root = MakeJournal("garbage-manifest");
  WriteFile(Manifest(root + "/app"), std::string(4096, '\xa5'));
  cases.push_back({"garbage MANIFEST", root});

  root = MakeJournal("truncated-manifest");
  fs::resize_file(Manifest(root + "/app"), 10);
  cases.push_back({"truncated MANIFEST", root});

  root = MakeJournal("current-is-a-directory");
  fs::remove(root + "/app/CURRENT");
  fs::create_directory(root + "/app/CURRENT");
  cases.push_back({"CURRENT is a directory", root});

  const std::vector<std::vector<std::string>> commands = {
      {"replay"},
      {"replay", "--json"},
      {"crashes"},
      {"state"},
      {"stats"},
      {"verify"},
      {"export", "--history", "-"},
      {"export", "--state", dir_ / "out.json"},
      {"compact", "--keep-events", "1"},
  };
  for (const Case& c : cases) {
    for (const auto& command : commands) {
      ExpectOneLineFailure(Tool(c.root, command),
                           fmt::format("{}: {}", c.what, fmt::join(command, " ")));
    }
  }
}

TEST_F(UnreadableJournal, GarbageFilesInAStreamDirectoryNeverCrashTheTool) {
  // Files RocksDB did not write, named like its own: they are either ignored
  // (and the journal reads as before) or refused with one line.
  const std::string root = MakeJournal("planted");
  WriteFile(root + "/app/999999.log", std::string(20000, '\x5a'));
  WriteFile(root + "/app/999998.sst", std::string(20000, '\x00'));
  WriteFile(root + "/app/OPTIONS-999999", "[Version]\n\x01\x02\x03 nonsense = = =\n");
  WriteFile(root + "/app/random.bin", std::string("\x00\xff\x10\x20", 4));
  for (const auto& command : std::vector<std::vector<std::string>>{
           {"replay"}, {"state"}, {"stats"}, {"verify"}, {"crashes"}}) {
    ProcessResult r = Tool(root, command);
    const std::string what = fmt::format("planted files: {}", fmt::join(command, " "));
    EXPECT_FALSE(r.timed_out) << what;
    EXPECT_EQ(r.signal, 0) << what;
    if (r.exit_code != 0) {
      EXPECT_EQ(CountLines(r.err), 1) << what << ":\n" << r.err;
    }
  }
}

TEST_F(UnreadableJournal, TheAppKeepsRunningOnAnUnusableJournalAndSaysSoInOneLine) {
  WriteFile(dir_ / "plain-file", "I am not a journal\n");
  const std::string damaged = MakeJournal("damaged");
  WriteFile(damaged + "/app/CURRENT", "garbage\n");
  for (const std::string& root : {dir_ / "plain-file", damaged}) {
    const std::string err_path = dir_ / "unusable.err";
    Child app({APP_CHILD, root, dir_ / "unusable.json"}, err_path);
    auto start = app.ReadLine(30s);
    ASSERT_TRUE(start.has_value()) << root << ": " << ReadFile(err_path);
    // A stream that cannot be opened is moved aside and a fresh one written
    // (damaged_journal_test.cpp); a root that is a plain file stays unusable.
    if (root != damaged) EXPECT_NE(*start, "start failures=0") << root;
    ASSERT_TRUE(app.WriteLine("errors 5 lost"));
    auto done = app.ReadLine(30s);
    ASSERT_TRUE(done.has_value()) << root << ": the app died: " << ReadFile(err_path);
    ASSERT_TRUE(app.WriteLine("quit"));
    auto status = app.Wait(30s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << root << ": " << *status;
    const std::string err = ReadFile(err_path);
    if (root == damaged) {
      EXPECT_NE(err.find("moved it aside intact"), std::string::npos) << err;
    } else {
      EXPECT_EQ(CountLines(err), 1) << root << ":\n" << err;
    }
  }
}

}  // namespace
}  // namespace blackbox::faults
