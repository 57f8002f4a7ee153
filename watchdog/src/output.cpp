#include "output.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

namespace blackbox::watchdog {

std::optional<std::string> OutputSink::Open(const std::string& path, uint64_t max_bytes, int kept) {
  path_ = path;
  max_bytes_ = max_bytes;
  kept_ = kept;
  if (path_.empty()) return std::nullopt;
  // O_NOFOLLOW, and an existing file must be a regular file of the running
  // user: the log's directory may be one others can write to (/tmp), and the
  // child's output must not be appended to a file they point it at.
  file_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file_) {
    if (errno == ELOOP) return fmt::format("{} is a symbolic link; give the file itself", path_);
    return fmt::format("{}: {}", path_, std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(file_.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    file_.reset();
    return fmt::format("{} is not a regular file of the running user", path_);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  return std::nullopt;
}

void OutputSink::Rotate() {
  for (int i = kept_ - 1; i >= 1; --i) {
    ::rename(fmt::format("{}.{}", path_, i).c_str(), fmt::format("{}.{}", path_, i + 1).c_str());
  }
  if (kept_ >= 1) {
    ::rename(path_.c_str(), fmt::format("{}.1", path_).c_str());
  } else {
    ::unlink(path_.c_str());
  }
  // The name was just moved away: O_EXCL | O_NOFOLLOW refuses whatever
  // appeared there since instead of writing into it.
  file_.reset(
      ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file_ && !reported_error_) {
    reported_error_ = true;
    fmt::print(stderr, "blackbox-watchdog: reopening the log file {}: {}\n", path_,
               std::strerror(errno));
  }
  size_ = 0;
}

// One destination and the thread that writes to it.
struct OutputSink::Lane {
  int fd = -1;  // fd 1 or 2; -1 for the log file
  std::mutex mu;
  std::condition_variable wake;  // output queued, or stop
  std::condition_variable idle;  // nothing queued or in flight, or the thread ended
  std::string queued;            // guarded by mu
  size_t in_flight = 0;          // taken by the thread, not yet written
  uint64_t lost = 0;             // bytes the destination refused (EPIPE, ENOSPC, …)
  std::atomic<bool> stop = false;
  bool ended = false;
  std::thread thread;
};

namespace {

// Interrupts a destination thread's blocking write() (no SA_RESTART), so
// that Close ends in bounded time. SIGURG: ignored by default, and the
// watchdog uses no out-of-band socket data. The child gets the default
// disposition back (Spawn resets every signal).
constexpr int kInterruptSignal = SIGURG;
// Largest write to the log file between two rotation checks.
constexpr size_t kFilePiece = 64 * 1024;

void InstallInterruptHandler() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    return ::sigaction(kInterruptSignal, &sa, nullptr) == 0;
  }();
  (void)installed;
}

}  // namespace

OutputSink::OutputSink() = default;
OutputSink::OutputSink(OutputSink&& other) noexcept
    : path_(std::move(other.path_)),
      max_bytes_(other.max_bytes_),
      kept_(other.kept_),
      file_(std::move(other.file_)),
      size_(other.size_),
      reported_error_(other.reported_error_.load()),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)),
      dropped_(other.dropped_),
      closed_(other.closed_) {}
OutputSink::~OutputSink() { Close(0); }

OutputSink::Lane& OutputSink::LaneFor(bool is_stderr) {
  if (file_) return StartLane(out_, -1);
  return is_stderr ? StartLane(err_, STDERR_FILENO) : StartLane(out_, STDOUT_FILENO);
}

void OutputSink::Message(std::string_view text) {
  if (closed_) return;
  Lane& lane = StartLane(err_, STDERR_FILENO);
  {
    std::lock_guard lock(lane.mu);
    if (lane.queued.size() + text.size() > kQueueBytes) return;
    lane.queued.append(text);
  }
  lane.wake.notify_one();
}

OutputSink::Lane& OutputSink::StartLane(std::unique_ptr<Lane>& lane, int fd) {
  if (!lane) {
    InstallInterruptHandler();
    lane = std::make_unique<Lane>();
    lane->fd = fd;
    Lane* l = lane.get();
    l->thread = std::thread([this, l] {
      ::pthread_setname_np(::pthread_self(), "bb-wd-output");
      std::unique_lock lock(l->mu);
      while (true) {
        l->wake.wait(lock, [&] { return l->stop.load() || !l->queued.empty(); });
        if (l->stop.load()) break;
        // All of it at once (a swap, no copy): a destination that keeps up
        // costs one write per wakeup, whatever the backlog.
        std::string batch;
        batch.swap(l->queued);
        l->in_flight = batch.size();
        lock.unlock();
        const size_t unwritten = WriteBlocking(l->fd, batch, l->stop);
        lock.lock();
        l->in_flight = 0;
        l->lost += unwritten;
        if (l->queued.empty()) l->idle.notify_all();
      }
      l->ended = true;
      l->idle.notify_all();
    });
  }
  return *lane;
}

void OutputSink::Write(bool is_stderr, std::string_view data) {
  uint64_t& dropped = is_stderr ? dropped_.stderr_bytes : dropped_.stdout_bytes;
  if (closed_) {
    dropped += data.size();
    return;
  }
  Lane& lane = LaneFor(is_stderr);
  {
    std::lock_guard lock(lane.mu);
    if (lane.queued.size() + data.size() > kQueueBytes) {
      dropped += data.size();  // the destination is not keeping up: never wait for it
      return;
    }
    lane.queued.append(data);
  }
  lane.wake.notify_one();
}

OutputSink::Dropped OutputSink::TakeDropped() {
  for (Lane* lane : {out_.get(), err_.get()}) {
    if (lane == nullptr || (file_ && lane == err_.get())) continue;
    std::lock_guard lock(lane->mu);
    (lane == err_.get() ? dropped_.stderr_bytes : dropped_.stdout_bytes) +=
        std::exchange(lane->lost, 0);
  }
  return std::exchange(dropped_, Dropped{});
}

void OutputSink::Close(double seconds) {
  if (closed_) return;
  closed_ = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (Lane* lane : {out_.get(), err_.get()}) {
    if (lane == nullptr) continue;
    std::unique_lock lock(lane->mu);
    lane->idle.wait_until(
        lock, deadline, [&] { return lane->ended || (lane->queued.empty() && !lane->in_flight); });
    lane->stop = true;
    lane->wake.notify_one();
    // A write() the thread is blocked in returns EINTR on the signal; the
    // thread may also be just about to enter one, hence the repeats.
    while (!lane->ended) {
      ::pthread_kill(lane->thread.native_handle(), kInterruptSignal);
      lane->idle.wait_for(lock, std::chrono::milliseconds(10));
    }
    // With a log file, err_ holds only the watchdog's own messages.
    if (!(file_ && lane == err_.get())) {
      (lane == err_.get() ? dropped_.stderr_bytes : dropped_.stdout_bytes) +=
          lane->queued.size() + std::exchange(lane->lost, 0);
    }
    lane->queued.clear();
    lock.unlock();
    lane->thread.join();
  }
}

size_t OutputSink::WriteBlocking(int fd, std::string_view data, const std::atomic<bool>& stop) {
  if (fd < 0) {
    // The log file, in pieces as small as the loop's reads, so that a batch
    // does not carry a file far past its rotation size.
    while (!data.empty()) {
      const std::string_view piece = data.substr(0, kFilePiece);
      data.remove_prefix(piece.size());
      if (max_bytes_ > 0 && size_ + piece.size() > max_bytes_ && size_ > 0) Rotate();
      if (!file_) return piece.size() + data.size();  // Rotate could not reopen it
      if (const size_t unwritten = WriteBlocking(file_.get(), piece, stop); unwritten > 0) {
        return unwritten + data.size();
      }
    }
    return 0;
  }
  while (!data.empty() && fd >= 0) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      if (stop.load()) return data.size();  // Close: what is left is dropped
      continue;
    }
    if (n < 0) {
      // EPIPE, ENOSPC, …: the output is lost, the supervision goes on.
      if (!reported_error_.exchange(true)) {
        fmt::print(stderr, "blackbox-watchdog: writing the child's output: {}\n",
                   std::strerror(errno));
      }
      return data.size();
    }
    data.remove_prefix(static_cast<size_t>(n));
    if (fd == file_.get()) size_ += static_cast<uint64_t>(n);
  }
  return data.size();
}

std::unique_ptr<Pattern> Pattern::Compile(const std::string& text, std::string* error) {
  auto pattern = std::make_unique<Pattern>(Key());
  int rc = ::regcomp(&pattern->regex_, text.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char buf[256];
    ::regerror(rc, &pattern->regex_, buf, sizeof buf);
    if (error != nullptr) *error = buf;
    // regcomp failed: nothing to free, so don't let the destructor run regfree.
    pattern->compiled_ = false;
    return nullptr;
  }
  pattern->text_ = text;
  return pattern;
}

Pattern::~Pattern() {
  if (compiled_) ::regfree(&regex_);
}

bool Pattern::Matches(const char* line) const {
  return ::regexec(&regex_, line, 0, nullptr, 0) == 0;
}

void LineScanner::Feed(std::string_view data, int64_t now_ns, const MatchFn& on_match) {
  while (!data.empty()) {
    size_t newline = data.find('\n');
    size_t take = std::min(newline == std::string_view::npos ? data.size() : newline,
                           kMaxLine - line_.size());
    line_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (!data.empty() && data.front() == '\n') {
      data.remove_prefix(1);
      Line(now_ns, on_match);
    } else if (line_.size() >= kMaxLine) {
      Line(now_ns, on_match);
    }
  }
}

void LineScanner::Finish(int64_t now_ns, const MatchFn& on_match) {
  if (!line_.empty()) Line(now_ns, on_match);
}

void LineScanner::Line(int64_t now_ns, const MatchFn& on_match) {
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  for (const std::unique_ptr<Pattern>& pattern : *patterns_) {
    if (!pattern->Matches(line_.c_str())) continue;
    if (last_refill_ns_ != 0) {
      tokens_ = std::min(
          per_second_, tokens_ + per_second_ * static_cast<double>(now_ns - last_refill_ns_) / 1e9);
    }
    last_refill_ns_ = now_ns;
    if (tokens_ >= 1) {
      tokens_ -= 1;
      on_match({pattern->text(), line_, TakeSuppressed()});
    } else {
      suppressed_ += 1;
    }
    break;  // one report per line, for the first pattern that matches
  }
  line_.clear();
}

}  // namespace blackbox::watchdog
