/* The crash-loop child of bench_watchdog.py: appends its CLOCK_MONOTONIC
 * start time (ns) to the file named by argv[1] and exits 1 at once.
 * Linked statically so that exec costs the same, little, for every
 * supervisor. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) return 64;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char line[32];
  int n = snprintf(line, sizeof line, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line, (size_t)n) != n) return 100;
  return 1;
}
