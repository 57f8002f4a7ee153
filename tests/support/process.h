// Running a real process to completion (the binaries under test and small
// helper programs), and reading and writing whole files. Shared by every test
// suite that drives a binary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace blackbox::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when the process ended by a signal
  int signal = 0;      // the signal that ended it, 0 when it exited
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::chrono::milliseconds timeout{30000};
  // The environment to start from ("KEY=VALUE" entries); ours when unset.
  std::optional<std::vector<std::string>> env;
  // "KEY=VALUE", added to that environment; each replaces an entry with the
  // same key.
  std::vector<std::string> extra_env;
  std::optional<mode_t> umask;  // the child's umask (ours otherwise)
  std::string stdin_path;       // the file on the child's stdin; /dev/null when empty
};

// Runs argv (argv[0] is a path, no PATH lookup, no shell) to completion,
// collecting stdout and stderr (both pipes are drained together, so a child
// that writes a lot to either never blocks). Past the timeout the process is
// SIGKILLed and timed_out is set. Throws std::runtime_error when the process
// cannot be started (no pipe, no fork, stdin_path cannot be opened); a failed
// exec shows as exit code 127.
ProcessResult RunProcess(const std::vector<std::string>& argv, const RunOptions& options = {});

// The building block of RunProcess, for callers that talk to the child while
// it runs: starts argv with `in`, `out` and `err` as its stdin, stdout and
// stderr, and the environment and umask of `options` (its timeout and
// stdin_path are not used). Every other descriptor is closed in the child.
// Returns the child's pid; the caller reaps it. Throws std::runtime_error when
// fork fails.
pid_t StartProcess(const std::vector<std::string>& argv, const RunOptions& options, int in, int out,
                   int err);

// The whole file ("" when it cannot be read).
std::string ReadFile(const std::string& path);
// Replaces the file's contents with `text`.
void WriteFile(const std::string& path, const std::string& text);

}  // namespace blackbox::testing
