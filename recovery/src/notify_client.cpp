#include "notify_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace blackbox {
namespace {

bool Address(const char* name, sockaddr_un* addr, socklen_t* len) {
  size_t n = std::strlen(name);
  if (n < 2 || n >= sizeof(addr->sun_path) || (name[0] != '/' && name[0] != '@')) return false;
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, name, n);
  // An abstract socket: a leading NUL, and the length counts no terminator.
  if (name[0] == '@') addr->sun_path[0] = '\0';
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n + (name[0] == '/' ? 1 : 0));
  return true;
}

}  // namespace

NotifyClient::NotifyClient() {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr) return;
  sockaddr_un addr{};
  socklen_t len = 0;
  if (!Address(name, &addr, &len)) return;
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  // Connected once, so each Send is a plain send().
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  bool for_us = pid == nullptr || std::strtol(pid, nullptr, 10) == getpid();
  if (usec != nullptr && for_us) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(usec, &end, 10);
    if (end != usec && *end == '\0') watchdog_ = std::chrono::microseconds(v);
  }
}

NotifyClient::~NotifyClient() {
  if (fd_ >= 0) close(fd_);
}

bool NotifyClient::Send(std::string_view state) const {
  if (fd_ < 0) return false;
  return send(fd_, state.data(), state.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(state.size());
}

}  // namespace blackbox
