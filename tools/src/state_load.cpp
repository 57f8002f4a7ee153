#include "state_load.h"

#include <fmt/format.h>

#include "journal_access.h"
#include "time_spec.h"
#include "tool_error.h"

namespace blackbox::tools {

namespace {

// `option TEXT` names a moment before anything the journal holds: an all-zero
// state would look like a real one, so say where the journal begins instead.
[[noreturn]] void BeforeTheJournal(const MergedReader& reader, const std::string& at,
                                   std::string_view option) {
  int64_t first_ns = 0;
  bool any = false;
  Status s = reader.Scan({}, [&](const Record& r) {
    first_ns = r.event->time_ns();
    any = true;
    return false;
  });
  if (!s.ok() || !any) Trouble(fmt::format("{} {}: the journal holds no events", option, at));
  Trouble(fmt::format("{} {}: the journal starts at {}", option, at, FormatUtc(first_ns)));
}

}  // namespace

SystemState LoadStateAt(const std::string& root, const std::string& at, std::string_view option,
                        uint64_t* damaged) {
  LoadStateOptions options;
  std::unique_ptr<MergedReader> reader;
  if (!at.empty()) {
    reader = OpenJournal(root);
    Bound bound = ResolveBound(at, option, *reader, "");
    if (bound.at.time_ns <= 0) BeforeTheJournal(*reader, at, option);
    options.until_ns = bound.at.time_ns;
  } else {
    OpenJournal(root);  // for its clear errors about an unreadable root
  }
  DamageReport damage;
  options.on_bad = damage.callback();
  Result<SystemState> state = LoadState(root, options);
  if (!state.ok()) {
    Trouble(fmt::format("cannot read journal '{}': {}", root, state.status().ToString()));
  }
  // Nothing folded (no event, no snapshot at or before the moment).
  if (reader && state->timestamp_ns == 0) BeforeTheJournal(*reader, at, option);
  damage.Summarize();
  if (damaged != nullptr) *damaged = damage.count();
  return std::move(state.value());
}

}  // namespace blackbox::tools
