// The child's stdout and stderr: copied to a sink and scanned line by line for
// error patterns, with journaling of matches rate-limited.
#pragma once

#include <regex.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "unique_fd.h"

namespace blackbox::watchdog {

// Where the child's output goes: the watchdog's own stdout/stderr, or one log
// file rotated by size (<path>.1 … <path>.<kept>, newest first).
//
// Write never blocks the event loop. Each destination (fd 1, fd 2, or the log
// file) has its own thread that does the blocking writes, fed by a queue of at
// most kQueueBytes (plus the batch the thread is writing, at most as much
// again): a destination nobody reads (a stuck terminal, a stalled
// log shipper, a pipe whose reader stopped) fills its queue, and what does not
// fit is dropped and counted (TakeDropped), never waited for. The child's
// pipes keep being drained whatever the destinations do.
//
// Why threads, and not O_NONBLOCK on fds 1 and 2: the flag belongs to the
// open file description, which the watchdog shares with whoever started it
// (a shell's terminal, a supervisor's pipe or socket): setting it would make
// their writes fail with EAGAIN. Reopening /proc/self/fd/1 gives a private
// description for pipes and terminals, but not for sockets (journald's
// stdout) and not for a regular file, whose writes can stall too (writeback
// throttling, a hung network filesystem). poll(POLLOUT) before a write is not
// enough either: POLLOUT on a pipe means one free page, on a terminal or a
// socket a write bigger than the free room still blocks. A thread blocked in
// write() holds up only its own destination.
class OutputSink {
 public:
  OutputSink();
  ~OutputSink();
  // Only before the first Write: the destination threads hold `this`.
  OutputSink(OutputSink&& other) noexcept;
  OutputSink& operator=(OutputSink&&) = delete;

  // An empty path passes output through to fds 1 and 2. Otherwise opens (for
  // appending) `path`. Returns an error message on failure.
  std::optional<std::string> Open(const std::string& path, uint64_t max_bytes, int kept = 3);
  // Queues `data` for its destination. Never blocks: when the destination's
  // queue has no room for all of `data`, `data` is dropped and counted.
  // Write errors of the destination are reported once on stderr.
  void Write(bool is_stderr, std::string_view data);

  // One of the watchdog's own messages, for its stderr, through the same
  // kind of queue (so a stalled stderr holds up no decision). Dropped, and
  // not counted, when the queue is full or the sink closed.
  void Message(std::string_view text);

  struct Dropped {
    uint64_t stdout_bytes = 0;
    uint64_t stderr_bytes = 0;
  };
  // Bytes dropped since the previous call.
  Dropped TakeDropped();

  // Gives the queued output up to `seconds` to be written, then stops the
  // threads (interrupting a write that blocks) and counts what was not
  // written as dropped. Write after Close drops everything.
  void Close(double seconds);

  // Room of each destination's queue.
  static constexpr size_t kQueueBytes = 1 << 20;

 private:
  struct Lane;
  // The blocking write to `fd` (or the log file when fd < 0): runs on a
  // destination's thread, never on the loop's.
  // Returns the bytes it did not write (an error, or `stop` set while blocked).
  size_t WriteBlocking(int fd, std::string_view data, const std::atomic<bool>& stop);
  void Rotate();
  Lane& LaneFor(bool is_stderr);
  Lane& StartLane(std::unique_ptr<Lane>& lane, int fd);

  std::string path_;
  uint64_t max_bytes_ = 0;
  int kept_ = 3;
  UniqueFd file_;
  uint64_t size_ = 0;
  std::atomic<bool> reported_error_ = false;  // written by the destination threads
  // out_, err_: fd 1 and 2 in pass-through mode; with a log file, out_ serves
  // both streams and err_ only carries Message. Started at the first use,
  // after every move.
  std::unique_ptr<Lane> out_;
  std::unique_ptr<Lane> err_;
  Dropped dropped_;
  bool closed_ = false;
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
