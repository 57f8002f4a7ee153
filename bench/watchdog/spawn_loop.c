/* The floor of bench_watchdog.py's latency figure: starts the crasher N times
 * back to back with posix_spawn (clone(CLONE_VM | CLONE_VFORK) + exec) and
 * waitpid, no supervision at all. The gaps between the crasher's start times
 * are then only exit + wait + spawn + exec, what this machine's kernel needs
 * for a restart.
 *   watchdog_bench_spawn_loop N CRASHER FILE */
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc != 4) return 64;
  const int n = atoi(argv[1]);
  char* args[] = {argv[2], argv[3], NULL};
  for (int i = 0; i < n; ++i) {
    pid_t pid;
    if (posix_spawn(&pid, argv[2], NULL, NULL, args, environ) != 0) return 1;
    if (waitpid(pid, NULL, 0) != pid) return 1;
  }
  return 0;
}
