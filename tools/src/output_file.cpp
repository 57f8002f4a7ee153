#include "output_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tool_error.h"

namespace blackbox::tools {
namespace {

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

OutputFile::OutputFile(const std::string& path) : path_(path) {
  if (path == "-") {
    file_ = stdout;
    return;
  }
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path().empty() ? "." : target.parent_path();
  temp_path_ = (dir / fmt::format(".{}.tmp.XXXXXX", target.filename().string())).string();
  int fd = mkstemp(temp_path_.data());  // mode 0600
  if (fd < 0) BadArgument(fmt::format("cannot write '{}': {}", path, ErrnoText()));
  file_ = fdopen(fd, "w");
  if (file_ == nullptr) {
    ::close(fd);
    ::unlink(temp_path_.c_str());
    Trouble(fmt::format("cannot write '{}': {}", path, ErrnoText()));
  }
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
}

void OutputFile::StartWriteback() {
  // What is still in the stdio buffer is not in the file yet; flush first.
  // A failure here is not lost: the stream's error flag is checked by Commit().
  // sync_file_range is only a hint (Linux); write errors surface again, and
  // are reported, at the fsync.
  if (std::fflush(file_) == 0) {
    ::sync_file_range(fileno(file_), static_cast<off_t>(written_back_),
                      static_cast<off_t>(written_ - written_back_), SYNC_FILE_RANGE_WRITE);
  }
  written_back_ = written_;
}

OutputFile::~OutputFile() {
  if (temp_path_.empty() || committed_) return;
  std::fclose(file_);
  ::unlink(temp_path_.c_str());
}

void OutputFile::Commit() {
  if (temp_path_.empty()) {
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      Trouble(fmt::format("cannot write to stdout: {}", ErrnoText()));
    }
    return;
  }
  bool ok = std::fflush(file_) == 0 && !std::ferror(file_) && ::fsync(fileno(file_)) == 0;
  std::string why = ok ? "" : ErrnoText();
  if (std::fclose(file_) != 0 && ok) {
    ok = false;
    why = ErrnoText();
  }
  committed_ = true;  // the FILE is closed either way
  if (ok && ::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    ok = false;
    why = ErrnoText();
  }
  if (!ok) {
    ::unlink(temp_path_.c_str());
    Trouble(fmt::format("cannot write '{}': {}", path_, why));
  }
  // Make the rename itself durable.
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void UseLargeStdoutBuffer() {
  // Line buffering on a terminal stays (people watch --follow); pipes and
  // files get a large block buffer.
  if (isatty(STDOUT_FILENO) != 1) std::setvbuf(stdout, nullptr, _IOFBF, 1 << 20);
}

}  // namespace blackbox::tools
