// A small, predictable service for the watchdog's end-to-end tests and
// benchmark. Each mode does one thing:
//   count FILE CODE        append "<pid>\n" to FILE, exit with CODE
//   record-start FILE      append CLOCK_MONOTONIC ns to FILE, exit 1 at once
//   argv FILE ARGS...      write each ARG to FILE, NUL-terminated, exit 0
//   sleep FILE             write "<pid>\n" to FILE, then wait forever
//   ignore-term FILE       like sleep, but with SIGTERM ignored
//   hog MB FILE            write "<pid>\n" to FILE, touch MB megabytes, wait forever
//   leak MB_PER_S FILE     write "<pid>\n" to FILE, then leak MB_PER_S megabytes a
//                          second (touched), forever
//   flood MB               write MB megabytes of 1 KiB lines to stdout, sending
//                          WATCHDOG=1 to $NOTIFY_SOCKET after every 4 MB; exit 0
//   chatty FILE            write "<pid>\n" to FILE, then 1 KiB lines to stdout
//                          forever (a write that fails ends it with 102)
//   notify TEXT [stay]     send TEXT ("\n" for newlines) to $NOTIFY_SOCKET and
//                          exit 0, or with "stay" wait forever after it
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

void Append(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) std::exit(100);
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::exit(101);
  ::close(fd);
}

[[noreturn]] void WaitForever() {
  while (true) ::pause();
}

void Notify(const char* message) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  ::sendto(fd, message, std::strlen(message), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 64;
  const std::string_view mode = argv[1];
  if (mode == "count" && argc == 4) {
    Append(argv[2], std::to_string(::getpid()) + "\n");
    return std::atoi(argv[3]);
  }
  if (mode == "record-start" && argc == 3) {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    Append(argv[2], std::to_string(ts.tv_sec * 1'000'000'000LL + ts.tv_nsec) + "\n");
    return 1;
  }
  if (mode == "argv" && argc >= 3) {
    std::string out;
    for (int i = 3; i < argc; ++i) {
      out += argv[i];
      out += '\0';
    }
    Append(argv[2], out);
    return 0;
  }
  if ((mode == "sleep" || mode == "ignore-term") && argc == 3) {
    if (mode == "ignore-term") ::signal(SIGTERM, SIG_IGN);
    Append(argv[2], std::to_string(::getpid()) + "\n");
    WaitForever();
  }
  if (mode == "hog" && argc == 4) {
    Append(argv[3], std::to_string(::getpid()) + "\n");
    const size_t bytes = static_cast<size_t>(std::atol(argv[2])) << 20;
    std::vector<char> memory(bytes);
    for (size_t i = 0; i < bytes; i += 4096) memory[i] = 1;
    WaitForever();
  }
  if (mode == "leak" && argc == 4) {
    // A steady leak: MB_PER_S megabytes a second, touched, in 20 steps a
    // second, measured from the start so that a late wakeup does not slow it.
    Append(argv[3], std::to_string(::getpid()) + "\n");
    const double rate = std::atof(argv[2]) * 1024 * 1024;
    std::vector<std::vector<char>> held;
    size_t total = 0;
    timespec start{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    while (true) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      const double elapsed = static_cast<double>(now.tv_sec - start.tv_sec) +
                             static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
      const auto want = static_cast<size_t>(rate * elapsed);
      if (want > total) {
        held.emplace_back(want - total, 1);  // zero-filled, then touched by the 1s
        total = want;
      }
      ::usleep(50'000);
    }
  }
  if (mode == "flood" && argc == 3) {
    const long megabytes = std::atol(argv[2]);
    std::string line(1023, 'x');
    line += '\n';
    std::string chunk;
    for (int i = 0; i < 64; ++i) chunk += line;  // 64 KiB
    for (long written = 0; written < megabytes * 16; ++written) {
      size_t done = 0;
      while (done < chunk.size()) {
        ssize_t n = ::write(1, chunk.data() + done, chunk.size() - done);
        if (n <= 0) return 102;
        done += static_cast<size_t>(n);
      }
      if (written % 64 == 0) Notify("WATCHDOG=1");
    }
    return 0;
  }
  if (mode == "notify" && (argc == 3 || (argc == 4 && std::string_view(argv[3]) == "stay"))) {
    std::string text;
    for (const char* c = argv[2]; *c != '\0'; ++c) {
      if (c[0] == '\\' && c[1] == 'n') {
        text += '\n';
        ++c;
      } else {
        text += *c;
      }
    }
    Notify(text.c_str());
    if (argc == 4) WaitForever();
    return 0;
  }
  if (mode == "chatty" && argc == 3) {
    Append(argv[2], std::to_string(::getpid()) + "\n");
    std::string line(1023, 'y');
    line += '\n';
    while (true) {
      if (::write(1, line.data(), line.size()) <= 0) return 102;
    }
  }
  std::fprintf(stderr, "test_child: bad arguments\n");
  return 64;
}
