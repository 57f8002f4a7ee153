// A client of systemd's notify protocol (sd_notify): KEY=VALUE lines in one
// datagram to the socket named by $NOTIFY_SOCKET. Works under systemd and
// under blackbox-watchdog alike.
#pragma once

#include <chrono>
#include <string_view>

namespace blackbox {

class NotifyClient {
 public:
  // Reads NOTIFY_SOCKET ("/path" or "@abstract"), WATCHDOG_USEC and
  // WATCHDOG_PID. Without NOTIFY_SOCKET every Send is a no-op.
  NotifyClient();
  ~NotifyClient();
  NotifyClient(const NotifyClient&) = delete;
  NotifyClient& operator=(const NotifyClient&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // WATCHDOG_USEC when it is set and meant for this process, else zero.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }
  // Sends `state` (e.g. "READY=1\nSTATUS=running"). Returns false on failure.
  bool Send(std::string_view state) const;

 private:
  int fd_ = -1;
  std::chrono::microseconds watchdog_{0};
};

}  // namespace blackbox
