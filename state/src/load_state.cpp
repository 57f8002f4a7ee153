// LoadState: newest usable snapshot + the merged tail after it.
#include <algorithm>
#include <optional>

#include "blackbox/state_io.h"

namespace blackbox {
namespace {

bool CoversOnly(const SystemState& s, const std::vector<std::string>& streams) {
  return std::all_of(s.covered.begin(), s.covered.end(), [&](const auto& entry) {
    return entry.second == 0 ||
           std::any_of(streams.begin(), streams.end(),
                       [&](const std::string& s) { return StreamOrigin(s) == entry.first; });
  });
}

}  // namespace

Result<SystemState> LoadState(std::string_view root, const LoadStateOptions& options) {
  std::vector<std::string> streams = options.streams;
  if (streams.empty()) {
    Result<std::vector<std::string>> listed = ListStreams(root);
    if (!listed.ok()) return listed.status();
    streams = std::move(listed.value());
  }
  if (streams.empty()) return SystemState{};

  Result<std::unique_ptr<MergedReader>> merged = MergedReader::Open(root, streams);
  if (!merged.ok()) return merged.status();

  // Any stream may hold snapshots (each writer snapshots what it folded);
  // the newest usable one across all of them is the starting point.
  std::optional<SystemState> best;
  auto consider = [&](const Snapshot& snap) {
    Result<SystemState> decoded = DecodeSnapshot(Bytes(snap.bytes));
    if (!decoded.ok()) return false;
    const SystemState& s = decoded.value();
    if (options.until_ns != 0 && s.timestamp_ns > options.until_ns) return false;
    if (!CoversOnly(s, streams)) return false;
    if (!best || s.timestamp_ns > best->timestamp_ns) best = std::move(decoded.value());
    return true;
  };
  for (const std::unique_ptr<Reader>& reader : (*merged)->readers()) {
    if (options.until_ns == 0) {
      // Cheap path: only the newest snapshot of each stream; older ones only
      // when the newest is unusable.
      Result<std::optional<Snapshot>> latest = reader->LatestSnapshot();
      if (latest.ok() && latest.value() && consider(*latest.value())) continue;
    }
    Result<std::vector<Snapshot>> all = reader->Snapshots();
    if (!all.ok()) continue;  // a damaged snapshot store only costs a longer fold
    for (auto it = all.value().rbegin(); it != all.value().rend(); ++it) {
      if (consider(*it)) break;
    }
  }

  SystemState state = best.value_or(SystemState{});
  MergedReader::Options scan;
  scan.until_ns = options.until_ns;
  scan.on_bad = options.on_bad;
  // Positions are kept per origin (a damaged stream set aside shares its
  // origin's, see Fold); each reader starts after its origin's.
  for (const std::unique_ptr<Reader>& reader : (*merged)->readers()) {
    auto it = state.covered.find(StreamOrigin(reader->stream()));
    if (it != state.covered.end()) scan.after.emplace_back(reader->stream(), it->second);
  }
  Status st = (*merged)->Scan(scan, [&](const Record& record) {
    Fold(state, *record.event, record.stream, record.seq);
    return true;
  });
  if (!st.ok()) return st;
  return state;
}

}  // namespace blackbox
