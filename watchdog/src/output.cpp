#include "output.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

void OutputSink::Write(bool is_stderr, std::string_view data) {
  int fd = file_ ? file_.get() : (is_stderr ? STDERR_FILENO : STDOUT_FILENO);
  if (file_ && max_bytes_ > 0 && size_ + data.size() > max_bytes_ && size_ > 0) {
    Rotate();
    fd = file_.get();
  }
  while (!data.empty() && fd >= 0) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // EPIPE, ENOSPC, …: the output is lost, the supervision goes on.
      if (!reported_error_) {
        reported_error_ = true;
        fmt::print(stderr, "blackbox-watchdog: writing the child's output: {}\n",
                   std::strerror(errno));
      }
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
    size_ += static_cast<uint64_t>(n);
  }
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
