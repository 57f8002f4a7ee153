// The receiving end of systemd's notify protocol: a datagram socket whose path
// the child finds in $NOTIFY_SOCKET; each datagram is newline-separated
// KEY=VALUE assignments ("READY=1\nSTATUS=warming up").
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "blackbox/status.h"
#include "unique_fd.h"

namespace blackbox::watchdog {

struct NotifyMessage {
  pid_t sender = 0;                   // from SCM_CREDENTIALS; 0 when the kernel sent none
  bool ready = false;                 // READY=1
  bool watchdog = false;              // WATCHDOG=1 (a heartbeat)
  bool watchdog_trigger = false;      // WATCHDOG=trigger (the app declares itself hung)
  bool stopping = false;              // STOPPING=1
  std::optional<std::string> status;  // STATUS=…
};

// Parses one datagram. Unknown assignments are ignored, as systemd does.
NotifyMessage ParseNotify(std::string_view datagram);

class NotifySocket {
 public:
  // Binds a SOCK_DGRAM AF_UNIX socket at `path` (replacing a stale one),
  // mode 0600, with SO_PASSCRED so that each datagram carries its sender.
  static Result<NotifySocket> Bind(const std::string& path);

  // One pending datagram, or nullopt when none is waiting. Never blocks.
  std::optional<NotifyMessage> Receive();

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

 private:
  NotifySocket(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

}  // namespace blackbox::watchdog
