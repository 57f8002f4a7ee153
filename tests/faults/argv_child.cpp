// Writes what reached it, byte for byte: each argument after the first,
// NUL-terminated, to the file named by the first argument.
//
//   faults_argv_child OUT_FILE ARGS...
//
// Started without arguments (as --app-script does), it writes its own argv[0]
// to the file named by $ARGV_CHILD_OUT.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace {

bool WriteArgs(const char* path, char** args, int count) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  for (int i = 0; i < count; ++i) {
    const size_t n = std::strlen(args[i]) + 1;  // with its NUL
    if (write(fd, args[i], n) != static_cast<ssize_t>(n)) return false;
  }
  return close(fd) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    const char* out = std::getenv("ARGV_CHILD_OUT");
    if (out == nullptr) return 64;
    return WriteArgs(out, argv, 1) ? 0 : 65;
  }
  return WriteArgs(argv[1], argv + 2, argc - 2) ? 0 : 65;
}
