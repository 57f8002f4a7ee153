// Folding a journal for the tool: LoadState with the tool's error handling and
// its --at argument.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "blackbox/state_io.h"

namespace blackbox::tools {

// The folded state of `root`, as of `at` (empty = now; else a time or a
// sequence number, see time_spec.h). A sequence number folds up to and
// including the time of that event. Damaged records are skipped with a
// warning. Throws ToolError: exit 2 for a bad `at`, exit 1 when the journal
// cannot be read or `at` is before its first event ("the journal starts at
// T": an empty state would pass for a real one). `damaged`, when given, gets
// the number of damaged records skipped.
SystemState LoadStateAt(const std::string& root, const std::string& at, std::string_view option,
                        uint64_t* damaged = nullptr);

}  // namespace blackbox::tools
