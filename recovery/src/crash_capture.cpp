#include "crash_capture.h"

#include <cxxabi.h>
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <typeinfo>
#include <vector>

namespace blackbox {
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr size_t kAltStackSize = 64 * 1024;
constexpr int kMaxFrames = 64;

std::mutex g_install_mu;
bool g_installed = false;
std::atomic<int> g_fd{-1};
std::atomic<bool> g_claimed{false};  // one record per process
std::atomic<bool> g_written{false};
struct sigaction g_previous[std::size(kFatalSignals)];
std::terminate_handler g_previous_terminate = nullptr;
// The kernel's signal return trampoline (glibc's __restore_rt): the return
// address of a signal handler's frame, as backtrace() lists it.
std::atomic<void*> g_restorer{nullptr};
// The executable's absolute path and the name backtrace_symbols_fd gives its
// frames (argv[0], often relative): the reader needs the file to name them.
char g_exe[PATH_MAX];
char g_argv0[PATH_MAX];
// The build ID of every module loaded at install time, as spill lines
// ("module <len>\n<hex id> <path>\n"), made in advance: the reader names
// frames only from files with the build ID that crashed. Replaced on each
// install; every table made stays allocated for good, since a handler on
// another thread may still be reading the previous one.
std::atomic<const std::string*> g_modules{nullptr};
auto* const g_all_modules = new std::vector<std::unique_ptr<const std::string>>;

// --- async-signal-safe output -------------------------------------------

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}
void WriteStr(int fd, const char* s) { WriteAll(fd, s, strlen(s)); }
void WriteUnsigned(int fd, unsigned long long v, unsigned base) {
  char buf[32];
  int i = sizeof buf;
  do {
    buf[--i] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0 && i > 0);
  WriteAll(fd, buf + i, sizeof buf - i);
}
void WriteLine(int fd, const char* key, unsigned long long v, unsigned base = 10) {
  WriteStr(fd, key);
  WriteStr(fd, base == 16 ? " 0x" : " ");
  WriteUnsigned(fd, v, base);
  WriteStr(fd, "\n");
}
// Length-prefixed so that any bytes (newlines included) survive.
void WriteBlob(int fd, const char* key, const char* s) {
  if (s == nullptr) return;
  size_t n = strlen(s);
  WriteStr(fd, key);
  WriteStr(fd, " ");
  WriteUnsigned(fd, n, 10);
  WriteStr(fd, "\n");
  WriteAll(fd, s, n);
  WriteStr(fd, "\n");
}

// Writes everything but the frames.
void WriteHeader(int fd, const char* origin, int sig, unsigned long long addr) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  WriteStr(fd, "BLACKBOX-CRASH 1\norigin ");
  WriteStr(fd, origin);
  WriteStr(fd, "\n");
  WriteLine(fd, "signal", static_cast<unsigned>(sig));
  WriteLine(fd, "fault_address", addr, 16);
  WriteLine(fd, "pid", static_cast<unsigned>(getpid()));
  WriteLine(fd, "time_ns", static_cast<unsigned long long>(ts.tv_sec) * 1000000000ull + ts.tv_nsec);
  if (g_exe[0] != '\0') WriteBlob(fd, "exe", g_exe);
  if (g_argv0[0] != '\0') WriteBlob(fd, "argv0", g_argv0);
  if (const std::string* modules = g_modules.load()) WriteAll(fd, modules->data(), modules->size());
}

void WriteFrames(int fd, void* const* frames, int n) {
  WriteLine(fd, "frames", static_cast<unsigned>(n > 0 ? n : 0));
  if (n > 0) backtrace_symbols_fd(frames, n, fd);
  WriteStr(fd, "end\n");
}

// A second thread crashing while the first writes waits for the record
// (briefly), so that the process does not die half-way through it.
void WaitForRecord() {
  for (int i = 0; i < 200 && !g_written.load(); ++i) {
    timespec ts{0, 10'000'000};
    nanosleep(&ts, nullptr);
  }
}

void* FaultPc(void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
#if defined(__x86_64__)
  return reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return reinterpret_cast<void*>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return nullptr;
#endif
}

void OnFatalSignal(int sig, siginfo_t* info, void* context) {
  int saved_errno = errno;
  int fd = g_fd.load();
  if (!g_claimed.exchange(true)) {
    if (fd >= 0) {
      void* frames[kMaxFrames];
      int n = backtrace(frames, kMaxFrames);
      // Start at the instruction that faulted: the frames before it are this
      // handler and the kernel's signal trampoline.
      int first = n > 0 ? 1 : 0;
      void* pc = FaultPc(context);
      for (int i = 0; i < n && pc != nullptr; ++i) {
        if (frames[i] == pc) {
          first = i;
          break;
        }
      }
      // Re-raised (si_code <= 0) by a handler chained in front of this one
      // (the Python module's faulthandler): the frames up to the trampoline
      // of the first signal (the last one near the top) are that handler's
      // re-raise; the fault follows it.
      void* restorer = g_restorer.load();
      if (info->si_code <= 0 && restorer != nullptr) {
        int last = -1;
        for (int i = first; i + 1 < n && i < first + 16; ++i) {
          if (frames[i] == restorer) last = i;
        }
        if (last >= 0) first = last + 1;
      }
      // A signal sent by kill/raise (si_code <= 0: SI_USER, SI_TKILL), such
      // as a handler chained in front of this one re-raising a fault, has no
      // fault address: si_addr then holds the sender's pid.
      uintptr_t addr = info->si_code > 0 ? reinterpret_cast<uintptr_t>(info->si_addr) : 0;
      WriteHeader(fd, "signal", sig, addr);
      WriteFrames(fd, frames + first, n - first);
    }
    g_written.store(true);
  } else {
    WaitForRecord();
  }
  // Default action, then re-raise: the signal is blocked inside this handler,
  // so it is delivered as soon as the handler returns (for a fault, the
  // faulting instruction runs again and faults for real).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig);
  errno = saved_errno;
}

[[noreturn]] void OnTerminate() {
  int fd = g_fd.load();
  if (!g_claimed.exchange(true)) {
    if (fd >= 0) {
      const char* type = nullptr;
      const char* what = nullptr;
      if (const std::type_info* t = abi::__cxa_current_exception_type(); t != nullptr) {
        type = t->name();  // mangled; demangled when the spill is read
        try {
          throw;
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
      }
      void* frames[kMaxFrames];
      int n = backtrace(frames, kMaxFrames);
      WriteHeader(fd, "terminate", SIGABRT, 0);
      WriteBlob(fd, "exception_type", type);
      WriteBlob(fd, "exception_message", what);
      WriteFrames(fd, frames + 1, n - 1);
    }
    g_written.store(true);
  }
  std::abort();  // the SIGABRT handler sees the claimed record and re-raises
}

// The GNU build ID note of a loaded module, in hex ("" when it has none).
std::string BuildIdOf(const dl_phdr_info& info) {
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto* p = reinterpret_cast<const unsigned char*>(info.dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    auto align4 = [](size_t n) { return (n + 3) & ~size_t{3}; };
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + align4(note->n_namesz);
      if (desc + note->n_descsz > end) break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
          std::memcmp(name, "GNU", 4) == 0) {
        std::string hex;
        for (size_t j = 0; j < note->n_descsz; ++j) {
          hex += "0123456789abcdef"[desc[j] >> 4];
          hex += "0123456789abcdef"[desc[j] & 0xf];
        }
        return hex;
      }
      p = desc + align4(note->n_descsz);
    }
  }
  return "";
}

}  // namespace

std::string MainProgramBuildId() {
  std::string id;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        // The first module is the main program (it has no name here).
        *static_cast<std::string*>(out) = BuildIdOf(*info);
        return 1;
      },
      &id);
  return id;
}

namespace {

// The spill lines of every loaded module with a file and a build ID.
const std::string* DescribeModules() {
  auto text = std::make_unique<std::string>();
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        // The main program has no name here: it is the executable.
        const char* path = info->dlpi_name[0] != '\0' ? info->dlpi_name : g_exe;
        std::string id = BuildIdOf(*info);
        if (path[0] != '/' || id.empty()) return 0;
        std::string line = id + " " + path;
        *static_cast<std::string*>(out) +=
            "module " + std::to_string(line.size()) + "\n" + line + "\n";
        return 0;
      },
      text.get());
  return g_all_modules->emplace_back(std::move(text)).get();
}

struct AltStack {
  std::unique_ptr<char[]> memory;
  AltStack() : memory(std::make_unique<char[]>(kAltStackSize)) {
    stack_t ss{};
    ss.ss_sp = memory.get();
    ss.ss_size = kAltStackSize;
    sigaltstack(&ss, nullptr);
  }
  ~AltStack() {
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
  }
};

}  // namespace

void EnsureAltStackForThisThread() {
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) return;
  thread_local AltStack stack;
}

bool InstallCrashCapture(const std::string& spill_path, bool truncate, std::string* error) {
  std::lock_guard lock(g_install_mu);
  if (g_installed) return false;
  // O_NOFOLLOW: a symlink planted in the journal directory must not redirect
  // (and truncate) some other file.
  // O_APPEND always: another writer of the same process may append to the
  // spill too (the Python module's faulthandler, see crash_spill.cpp).
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_APPEND | (truncate ? O_TRUNC : 0);
  int fd = open(spill_path.c_str(), flags, 0600);
  struct stat st {};
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())) {
    close(fd);
    fd = -1;
    errno = EPERM;
  }
  if (fd < 0) {
    if (error != nullptr) {
      *error = errno == ELOOP ? fmt::format("{} is a symbolic link", spill_path)
               : errno == EPERM
                   ? fmt::format("{} is not a regular file of the running user", spill_path)
                   : fmt::format("{}: {}", spill_path, std::strerror(errno));
    }
    return false;
  }
  // backtrace() loads libgcc's unwinder on first use; that must not happen
  // for the first time inside a signal handler.
  void* warmup[2];
  backtrace(warmup, 2);
  EnsureAltStackForThisThread();
  ssize_t n = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
  g_exe[n > 0 ? n : 0] = '\0';
  // What dladdr reports as the main program's file name: argv[0].
  strncpy(g_argv0, program_invocation_name, sizeof g_argv0 - 1);
  g_argv0[sizeof g_argv0 - 1] = '\0';
  g_modules.store(DescribeModules());

  g_claimed.store(false);
  g_written.store(false);
  g_fd.store(fd);
  for (size_t i = 0; i < std::size(kFatalSignals); ++i) {
    struct sigaction sa {};
    sa.sa_sigaction = OnFatalSignal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(kFatalSignals[i], &sa, &g_previous[i]);
  }
#if defined(__x86_64__)
  struct sigaction installed {};
  if (sigaction(SIGSEGV, nullptr, &installed) == 0) {
    g_restorer.store(reinterpret_cast<void*>(installed.sa_restorer));
  }
#endif
  g_previous_terminate = std::set_terminate(OnTerminate);
  g_installed = true;
  return true;
}

void UninstallCrashCapture() {
  std::lock_guard lock(g_install_mu);
  if (!g_installed) return;
  for (size_t i = 0; i < std::size(kFatalSignals); ++i) {
    sigaction(kFatalSignals[i], &g_previous[i], nullptr);
  }
  std::set_terminate(g_previous_terminate);
  int fd = g_fd.exchange(-1);
  if (fd >= 0) close(fd);
  g_installed = false;
}

}  // namespace blackbox
