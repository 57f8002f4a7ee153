// An application on the recovery manager, driven line by line on stdin, for
// the disk-full, permission and bad-journal tests.
//
//   faults_app_child JOURNAL STATE_FILE
//
// Prints "start failures=<F>" once the manager has started, then obeys:
//   errors N TAG [PAD]   report N exceptions with the message "TAG <i>"
//                        (followed by PAD bytes of padding) and set a gauge
//                        after each; prints "ack TAG <i>" for each exception
//                        whose journaling did not fail, then
//                        "done TAG failures=<F>"
//   until-failure TAG PAD MAX
//                        like errors, but stops after the first exception
//                        that could not be journaled (at most MAX)
//   quit                 leaves main normally (the manager records a clean stop)
// F is journal_failures() at that moment.
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "blackbox/recovery.h"

namespace {

void Say(const std::string& line) {
  std::string text = line + "\n";
  if (write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::_Exit(3);
  }
}

// Reports "TAG i" (+ padding); true when the journal took it.
bool ReportOne(blackbox::RecoveryManager& rm, const std::string& tag, long i, size_t pad) {
  const uint64_t before = rm.journal_failures();
  std::string message = fmt::format("{} {}", tag, i);
  if (pad > 0) message += " " + std::string(pad, 'x');
  rm.report_exception("faults", std::make_exception_ptr(std::runtime_error(message)));
  const bool written = rm.journal_failures() == before;
  if (written) Say(fmt::format("ack {} {}", tag, i));
  rm.set_gauge("active_positions", static_cast<double>(i));
  return written;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fmt::print(stderr, "usage: {} JOURNAL STATE_FILE\n", argv[0]);
    return 2;
  }
  blackbox::RecoveryOptions options;
  options.journal_dir = argv[1];
  options.state_file = argv[2];
  blackbox::RecoveryManager rm(options);
  Say(fmt::format("start failures={}", rm.journal_failures()));

  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::string cmd, tag;
    in >> cmd;
    if (cmd == "quit") break;
    if (cmd == "errors") {
      long n = 0;
      size_t pad = 0;
      in >> n >> tag >> pad;
      for (long i = 0; i < n; ++i) ReportOne(rm, tag, i, pad);
    } else if (cmd == "until-failure") {
      size_t pad = 0;
      long max = 0;
      in >> tag >> pad >> max;
      for (long i = 0; i < max && ReportOne(rm, tag, i, pad); ++i) {
      }
    } else {
      fmt::print(stderr, "faults_app_child: unknown command '{}'\n", line);
      return 2;
    }
    Say(fmt::format("done {} failures={}", tag, rm.journal_failures()));
  }
  return 0;
}
