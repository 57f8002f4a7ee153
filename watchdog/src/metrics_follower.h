// Follows a journal root read-only and folds what it finds into MetricsState.
// Used by the watchdog's /metrics (on the server's thread, never the event
// loop's) and by `blackbox metrics`.
#pragma once

#include <map>
#include <string>

#include "blackbox/status.h"
#include "metrics_fold.h"

namespace blackbox::metrics {

class JournalFollower {
 public:
  explicit JournalFollower(std::string root) : root_(std::move(root)) {}

  // Folds every event committed since the last call, in each stream's order;
  // picks up streams created since. Each stream is opened read-only for the
  // call and closed again (no cache held between scrapes). A damaged record
  // is skipped. Fails when the root cannot be listed or a stream opened; the
  // streams read before the failure stay folded.
  Status CatchUp();

  const MetricsState& state() const { return state_; }

 private:
  std::string root_;
  std::map<std::string, uint64_t, std::less<>> folded_;  // stream -> last seq folded
  MetricsState state_;
};

}  // namespace blackbox::metrics
