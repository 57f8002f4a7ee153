#include "notify_socket.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace blackbox::watchdog {

NotifyMessage ParseNotify(std::string_view datagram) {
  NotifyMessage message;
  while (!datagram.empty()) {
    size_t end = datagram.find('\n');
    std::string_view line = datagram.substr(0, end);
    datagram.remove_prefix(end == std::string_view::npos ? datagram.size() : end + 1);
    if (line == "READY=1") {
      message.ready = true;
    } else if (line == "WATCHDOG=1") {
      message.watchdog = true;
    } else if (line == "WATCHDOG=trigger") {
      message.watchdog_trigger = true;
    } else if (line == "STOPPING=1") {
      message.stopping = true;
    } else if (line.starts_with("STATUS=")) {
      message.status = std::string(line.substr(7));
    }
  }
  return message;
}

Result<NotifySocket> NotifySocket::Bind(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument(
        fmt::format("notify socket path too long ({} bytes, at most {}): {}", path.size(),
                    sizeof addr.sun_path - 1, path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Status::IOError(fmt::format("socket: {}", std::strerror(errno)));
  int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
  ::unlink(path.c_str());  // a socket left by a killed watchdog; we hold the instance lock
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IOError(fmt::format("bind {}: {}", path, std::strerror(errno)));
  }
  ::chmod(path.c_str(), 0600);
  return NotifySocket(std::move(fd), path);
}

std::optional<NotifyMessage> NotifySocket::Receive() {
  char data[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 16)];
  iovec iov{data, sizeof data - 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return std::nullopt;

  pid_t sender = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      sender = cred.pid;
    } else if (c->cmsg_type == SCM_RIGHTS) {
      // File descriptors for systemd's fd store: not supported, not leaked.
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
        ::close(passed);
      }
    }
  }
  NotifyMessage message = ParseNotify(std::string_view(data, static_cast<size_t>(n)));
  message.sender = sender;
  return message;
}

}  // namespace blackbox::watchdog
