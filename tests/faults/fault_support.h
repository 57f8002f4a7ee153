// Shared by the fault tests: temporary directories, real processes (run to
// completion with a deadline, or driven line by line), file helpers and a
// tmpfs mount that is always unmounted.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "process.h"
#include "temp_dir.h"

namespace blackbox::faults {

using TempDir = ::blackbox::testing::TempDir;  // tests/support/temp_dir.h

// Running a process to completion (tests/support/process.h): RunProcess with
// RunOptions (timeout, extra_env, umask), giving a ProcessResult.
using ::blackbox::testing::ProcessResult;
using ::blackbox::testing::RunOptions;
using ::blackbox::testing::RunProcess;
// RunOptions with only a timeout set.
inline RunOptions WithTimeout(std::chrono::milliseconds timeout) {
  RunOptions options;
  options.timeout = timeout;
  return options;
}

// A child process whose stdin we write and whose stdout we read line by
// line; its stderr goes to a file. Of `options` only the environment and the
// umask apply. Killed (SIGKILL) and reaped on destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& stderr_path,
        const RunOptions& options = {});
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next complete line of stdout (without '\n'), or nullopt at EOF or
  // when `timeout` passes first. A last line torn by a kill is dropped.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Writes `line` + '\n' to the child's stdin.
  bool WriteLine(const std::string& line);
  // SIGKILL, then reap. Returns the wait status.
  int Kill();
  // Waits up to `timeout` for the child to exit by itself; nullopt when it
  // did not (it is then still running).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

using ::blackbox::testing::ReadFile;
using ::blackbox::testing::WriteFile;
int CountLines(const std::string& text);

// Mounts a tmpfs of `bytes` at `dir` (created if needed). ok() is false when
// that is not possible (not root, no mount permission); reason() says why.
// Always unmounted (lazily, so that open files cannot keep it) on destruction.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, size_t bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool ok() const { return mounted_; }
  const std::string& reason() const { return reason_; }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string reason_;
};

}  // namespace blackbox::faults
