// How a command fails: a one-line message and the exit status that goes with it.
//
// Exit statuses (documented in tools/README.md):
//   0  success
//   1  the journal cannot be read or written, or (verify) it has damage
//   2  bad arguments: unknown type, unparsable time, missing file, …
// Commands throw ToolError; main prints "blackbox: <message>" and exits.
#pragma once

#include <stdexcept>
#include <string>

namespace blackbox::tools {

inline constexpr int kExitTrouble = 1;
inline constexpr int kExitUsage = 2;

class ToolError : public std::runtime_error {
 public:
  ToolError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

[[noreturn]] inline void BadArgument(const std::string& message) {
  throw ToolError(kExitUsage, message);
}
[[noreturn]] inline void Trouble(const std::string& message) {
  throw ToolError(kExitTrouble, message);
}

}  // namespace blackbox::tools
