// An application outside the blackbox tree that links the recovery manager
// from the installed package (and with it everything the manager needs).
#include <blackbox/recovery.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  blackbox::RecoveryOptions options;
  options.journal_dir = argv[1];
  options.state_file = "";
  auto& rm = blackbox::initialize_recovery_manager(options);
  blackbox::SystemInfo info = rm.get_system_info();
  rm.graceful_shutdown();
  std::printf("recovery manager ran as pid %d\n", static_cast<int>(info.pid));
  return 0;
}
