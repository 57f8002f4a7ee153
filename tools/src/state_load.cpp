#include "state_load.h"

#include <fmt/format.h>

#include "journal_access.h"
#include "tool_error.h"

namespace blackbox::tools {

SystemState LoadStateAt(const std::string& root, const std::string& at, std::string_view option,
                        uint64_t* damaged) {
  LoadStateOptions options;
  if (!at.empty()) {
    std::unique_ptr<MergedReader> reader = OpenJournal(root);
    Bound bound = ResolveBound(at, option, *reader, "");
    // LoadState's 0 means "everything"; a moment before the epoch folds nothing.
    options.until_ns = bound.at.time_ns == 0 ? 1 : bound.at.time_ns;
    if (bound.at.time_ns < 0) return SystemState{};
  } else {
    OpenJournal(root);  // for its clear errors about an unreadable root
  }
  DamageReport damage;
  options.on_bad = damage.callback();
  Result<SystemState> state = LoadState(root, options);
  if (!state.ok()) {
    Trouble(fmt::format("cannot read journal '{}': {}", root, state.status().ToString()));
  }
  damage.Summarize();
  if (damaged != nullptr) *damaged = damage.count();
  return std::move(state.value());
}

}  // namespace blackbox::tools
