// The child's stdout and stderr: copied to a sink and scanned line by line for
// error patterns, with journaling of matches rate-limited.
#pragma once

#include <regex.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "unique_fd.h"

namespace blackbox::watchdog {

// Where the child's output goes: the watchdog's own stdout/stderr, or one log
// file rotated by size (<path>.1 … <path>.<kept>, newest first).
class OutputSink {
 public:
  // An empty path passes output through to fds 1 and 2. Otherwise opens (for
  // appending) `path`. Returns an error message on failure.
  std::optional<std::string> Open(const std::string& path, uint64_t max_bytes, int kept = 3);
  // Writes everything (blocking on the destination). Errors are reported once.
  void Write(bool is_stderr, std::string_view data);

 private:
  void Rotate();
  std::string path_;
  uint64_t max_bytes_ = 0;
  int kept_ = 3;
  UniqueFd file_;
  uint64_t size_ = 0;
  bool reported_error_ = false;
};

// One compiled POSIX extended regular expression.
class Pattern {
 public:
  // nullptr, with *error set, when `text` does not compile.
  static std::unique_ptr<Pattern> Compile(const std::string& text, std::string* error);
  struct Key {  // only Compile can make one
   private:
    friend class Pattern;
    Key() = default;
  };
  explicit Pattern(Key) {}
  ~Pattern();
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;
  bool Matches(const char* line) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  regex_t regex_{};
  bool compiled_ = true;
};

struct LineMatch {
  std::string_view pattern;
  std::string_view line;
  uint32_t suppressed = 0;  // matches dropped since the previous reported one
};

// Splits one output stream into lines and reports those that match a pattern,
// at most `per_second` per second (with a burst of as many); the rest are
// counted and the count travels with the next reported match.
class LineScanner {
 public:
  using MatchFn = std::function<void(const LineMatch&)>;
  LineScanner(const std::vector<std::unique_ptr<Pattern>>* patterns, double per_second = 10)
      : patterns_(patterns), per_second_(per_second), tokens_(per_second) {}

  void Feed(std::string_view data, int64_t now_ns, const MatchFn& on_match);
  // Treats a pending partial line as complete (the stream ended).
  void Finish(int64_t now_ns, const MatchFn& on_match);
  // Matches dropped and not yet reported.
  uint32_t suppressed() const { return suppressed_; }
  uint32_t TakeSuppressed() { return std::exchange(suppressed_, 0); }

  // Lines longer than this are matched in pieces of this size.
  static constexpr size_t kMaxLine = 16 * 1024;

 private:
  void Line(int64_t now_ns, const MatchFn& on_match);
  const std::vector<std::unique_ptr<Pattern>>* patterns_;
  double per_second_;
  double tokens_;
  int64_t last_refill_ns_ = 0;
  uint32_t suppressed_ = 0;
  std::string line_;
};

}  // namespace blackbox::watchdog
