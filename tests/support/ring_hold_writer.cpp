#include "ring_hold_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace blackbox::testing {

RingHoldWriter::RingHoldWriter(const std::string& child, const std::string& root,
                               const std::string& stream, const std::string& mode,
                               const RunOptions& options) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    throw std::runtime_error("pipe2");
  }
  pid_ = StartProcess({child, root, stream, "65536", mode}, options, in[0], out[1], STDERR_FILENO);
  ::close(in[0]);
  ::close(out[1]);
  to_ = in[1];
  from_ = out[0];
}

RingHoldWriter::~RingHoldWriter() {
  Kill();
  ::close(to_);
  ::close(from_);
}

uint64_t RingHoldWriter::Append(int n) { return Command(std::to_string(n)); }

uint64_t RingHoldWriter::Command(const std::string& command) {
  const std::string line = command + "\n";
  if (::write(to_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 0;
  std::string reply;
  char c = 0;
  while (::read(from_, &c, 1) == 1 && c != '\n') reply += c;
  return reply.empty() ? 0 : std::stoull(reply);
}

void RingHoldWriter::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
  }
  pid_ = -1;
}

}  // namespace blackbox::testing
