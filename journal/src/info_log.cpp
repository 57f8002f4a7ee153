// The writer's RocksDB info log (<stream>/LOG), written with plain write(2).
//
// RocksDB's own info logger writes through a WritableFileWriter, and in
// RocksDB 7.x (Debian's build keeps assertions on) a WritableFileWriter
// whose append failed aborts the process on its next append
// ("Assertion `sync_without_flush_called_' failed"). On a full disk the LOG
// is the first file to fail and is written again at once (every open, every
// background error), so a full disk took the host process down. This logger
// cannot fail: a line that cannot be written is dropped, and the file is
// retried on the next line. It keeps what RocksDB's kept for the journal: one
// LOG of at most max_size bytes and one LOG.old, owner-only, never following
// a symlink, with the lines at or above the database's info_log_level (WARN:
// RocksDB's header lines are INFO, so a healthy journal has no LOG at all).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>

#include "internal.h"

namespace blackbox::internal {
namespace {

class PlainFileLogger : public rocksdb::Logger {
 public:
  PlainFileLogger(std::string dir, rocksdb::InfoLogLevel level, size_t max_size)
      : rocksdb::Logger(level),
        path_(dir + "/LOG"),
        old_path_(dir + "/LOG.old"),
        max_size_(max_size) {}
  ~PlainFileLogger() override {
    if (fd_ >= 0) ::close(fd_);
  }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char message[1024];
    int n = std::vsnprintf(message, sizeof message, format, ap);
    if (n < 0) return;
    const size_t len = std::min(static_cast<size_t>(n), sizeof message - 1);
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm t{};
    localtime_r(&now.tv_sec, &t);
    std::string line =
        fmt::format("{:04}/{:02}/{:02}-{:02}:{:02}:{:02}.{:06} {} {}\n", t.tm_year + 1900,
                    t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, now.tv_nsec / 1000,
                    ::syscall(SYS_gettid), std::string_view(message, len));
    std::lock_guard lock(mu_);
    if (fd_ >= 0 && size_ + line.size() > max_size_) {
      ::close(fd_);
      fd_ = -1;
      ::rename(path_.c_str(), old_path_.c_str());
    }
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd_ < 0) return;  // dropped; the next line tries again
      struct stat st {};
      size_ = ::fstat(fd_, &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
    }
    // A short write on a full disk leaves a torn line; the next one starts
    // on a line of its own.
    ssize_t written = ::write(fd_, line.data(), line.size());
    if (written > 0) size_ += static_cast<size_t>(written);
    if (written >= 0 && static_cast<size_t>(written) < line.size()) {
      [[maybe_unused]] ssize_t nl = ::write(fd_, "\n", 1);
    }
  }
  size_t GetLogFileSize() const override {
    std::lock_guard lock(mu_);
    return size_;
  }

 private:
  const std::string path_;
  const std::string old_path_;
  const size_t max_size_;
  mutable std::mutex mu_;
  int fd_ = -1;      // guarded by mu_
  size_t size_ = 0;  // guarded by mu_
};

}  // namespace

std::shared_ptr<rocksdb::Logger> OpenInfoLog(const std::string& dir, rocksdb::InfoLogLevel level,
                                             size_t max_size) {
  return std::make_shared<PlainFileLogger>(dir, level, max_size);
}

}  // namespace blackbox::internal
