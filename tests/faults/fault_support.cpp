#include "fault_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace blackbox::faults {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Child::Child(const std::vector<std::string>& argv, const std::string& stderr_path,
             const RunOptions& options) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw std::runtime_error("pipe failed");
  }
  int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (err < 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    throw std::runtime_error("cannot open " + stderr_path);
  }
  try {
    pid_ = ::blackbox::testing::StartProcess(argv, options, in[0], out[1], err);
  } catch (...) {
    for (int fd : {in[0], in[1], out[0], out[1], err}) close(fd);
    throw;
  }
  close(in[0]);
  close(out[1]);
  close(err);
  in_ = in[1];
  out_ = out[0];
  // A child that died must not kill us with SIGPIPE when we write to it.
  signal(SIGPIPE, SIG_IGN);
}

Child::~Child() {
  if (pid_ > 0) Kill();
  if (in_ >= 0) close(in_);
  if (out_ >= 0) close(out_);
}

std::optional<std::string> Child::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (eof_) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return std::nullopt;
    char buf[65536];
    ssize_t got = read(out_, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof_ = true;
      continue;
    }
    buffer_.append(buf, static_cast<size_t>(got));
  }
}

bool Child::WriteLine(const std::string& line) {
  std::string text = line + "\n";
  return write(in_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

int Child::Kill() {
  int status = 0;
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return status;
}

std::optional<int> Child::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t got = waitpid(pid_, &status, WNOHANG);
    if (got == pid_) {
      pid_ = -1;
      return status;
    }
    if (Clock::now() > deadline) return std::nullopt;
    usleep(5000);
  }
  return std::nullopt;
}

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TmpfsMount::TmpfsMount(const std::string& dir, size_t bytes) : dir_(dir) {
  if (geteuid() != 0) {
    reason_ = "needs root to mount a tmpfs";
    return;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string data = "size=" + std::to_string(bytes) + ",mode=0700";
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
    reason_ = std::string("mount -t tmpfs failed: ") + std::strerror(errno);
    return;
  }
  mounted_ = true;
}

TmpfsMount::~TmpfsMount() {
  if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
}

}  // namespace blackbox::faults
