#include "symbolizer.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "process.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

// Local to this file, so only the file's own symbol table knows it.
constexpr int kLocalFunctionFirstLine = __LINE__ + 1;
__attribute__((noinline)) int LocalFunction(int x) { return x * 3 + 1; }
constexpr int kLocalFunctionLastLine = __LINE__ - 1;

// A call inside an inlined function: the return address Capture() records
// lies in OuterFunction's code, in the part inlined from InlinedHelper.
uintptr_t g_captured = 0;
__attribute__((noinline)) void Capture() {
  g_captured = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  asm volatile("");
}
constexpr int kInlinedHelperFirstLine = __LINE__ + 1;
__attribute__((always_inline)) inline void InlinedHelper() { Capture(); }
constexpr int kInlinedHelperLastLine = __LINE__ - 1;
constexpr int kOuterCallLine = __LINE__ + 3;
__attribute__((noinline)) void OuterFunction() {
  asm volatile("");
  InlinedHelper();
  asm volatile("");
}

std::string SelfPath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The address of `fn` relative to where this executable was loaded: what
// backtrace_symbols_fd prints as "(+0x...)".
uint64_t ModuleAddress(const void* fn) {
  Dl_info info{};
  EXPECT_NE(dladdr(fn, &info), 0);
  return reinterpret_cast<uintptr_t>(fn) - reinterpret_cast<uintptr_t>(info.dli_fbase);
}

TEST(Symbolizer, NamesAFunctionTheDynamicSymbolTableDoesNotHold) {
  volatile int keep = LocalFunction(1);
  (void)keep;
  const void* fn = reinterpret_cast<const void*>(&LocalFunction);
  Dl_info info{};
  ASSERT_NE(dladdr(fn, &info), 0);
  EXPECT_EQ(info.dli_sname, nullptr) << "exported after all: " << info.dli_sname;

  Symbolizer symbolizer;
  uint64_t address = ModuleAddress(fn);
  auto where = symbolizer.Find(SelfPath(), address + 4, /*return_address=*/false);
  ASSERT_TRUE(where.has_value());
  EXPECT_NE(where->function.find("LocalFunction"), std::string::npos) << where->function;
  EXPECT_EQ(where->offset, 4u);
  EXPECT_NE(where->file.find("symbolizer_test.cpp"), std::string::npos) << where->file;
  EXPECT_GE(where->line, kLocalFunctionFirstLine);
  EXPECT_LE(where->line, kLocalFunctionLastLine);

  // A return address is looked up one byte earlier (inside the call) and
  // keeps its offset.
  auto ret = symbolizer.Find(SelfPath(), address + 4, /*return_address=*/true);
  ASSERT_TRUE(ret.has_value());
  EXPECT_EQ(ret->function, where->function);
  EXPECT_EQ(ret->offset, 4u);

  // By name, the same place.
  auto start = symbolizer.AddressOf(SelfPath(), where->function);
  ASSERT_TRUE(start.has_value());
  EXPECT_EQ(*start, address);
}

TEST(Symbolizer, ExpandsInlinedCallsIntoFramesOfTheirOwn) {
  OuterFunction();
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<const void*>(g_captured), &info), 0);
  uint64_t address = g_captured - reinterpret_cast<uintptr_t>(info.dli_fbase);

  Symbolizer symbolizer;
  auto where = symbolizer.Find(SelfPath(), address, /*return_address=*/true);
  ASSERT_TRUE(where.has_value());
  // The real frame: OuterFunction, at the line that called InlinedHelper.
  EXPECT_NE(where->function.find("OuterFunction"), std::string::npos) << where->function;
  EXPECT_NE(where->file.find("symbolizer_test.cpp"), std::string::npos) << where->file;
  EXPECT_EQ(where->line, kOuterCallLine);
  // Inside it, the inlined InlinedHelper, at its call of Capture().
  ASSERT_EQ(where->inlined.size(), 1u);
  EXPECT_NE(where->inlined[0].function.find("InlinedHelper"), std::string::npos)
      << where->inlined[0].function;
  EXPECT_NE(where->inlined[0].file.find("symbolizer_test.cpp"), std::string::npos);
  EXPECT_GE(where->inlined[0].line, kInlinedHelperFirstLine);
  EXPECT_LE(where->inlined[0].line, kInlinedHelperLastLine);
}

// With DEBUGINFOD_URLS set in the environment, libdwfl's standard lookup
// asks a debuginfod server for the debug information of a
// module that has none; the next start after a crash must never wait on the
// network. The "server" here accepts connections and never answers.
TEST(Symbolizer, NeverAsksADebuginfodServer) {
  int server = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(server, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(server, 16), 0);
  ASSERT_EQ(getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  setenv("DEBUGINFOD_URLS", url.c_str(), 1);
  setenv("DEBUGINFOD_TIMEOUT", "2", 1);  // should it ask after all, do not hang

  // This executable without its debug information (symbols stay).
  const blackbox::testing::TempDir dir;
  const std::string stripped = dir / "stripped";
  auto strip =
      blackbox::testing::RunProcess({"/usr/bin/objcopy", "--strip-debug", SelfPath(), stripped});
  ASSERT_EQ(strip.exit_code, 0) << strip.err;
  Symbolizer symbolizer;
  uint64_t address = ModuleAddress(reinterpret_cast<const void*>(&LocalFunction));
  auto where = symbolizer.Find(stripped, address, false);
  unsetenv("DEBUGINFOD_URLS");
  unsetenv("DEBUGINFOD_TIMEOUT");

  ASSERT_TRUE(where.has_value());  // named from the symbol table
  EXPECT_NE(where->function.find("LocalFunction"), std::string::npos) << where->function;
  EXPECT_TRUE(where->file.empty()) << where->file;  // no line without debug information
  int client = accept(server, nullptr, nullptr);
  EXPECT_LT(client, 0) << "the symbolizer connected to the debuginfod server";
  if (client >= 0) close(client);
  close(server);
}

TEST(Symbolizer, LeavesAloneAFileChangedAfterTheCrash) {
  // A crash at 1 ns past the epoch: the executable on disk is newer, so it is
  // not the build that crashed.
  Symbolizer symbolizer(/*not_after_ns=*/1);
  uint64_t address = ModuleAddress(reinterpret_cast<const void*>(&LocalFunction));
  EXPECT_FALSE(symbolizer.Find(SelfPath(), address, false).has_value());
  EXPECT_FALSE(symbolizer.AddressOf(SelfPath(), "main").has_value());
}

TEST(Symbolizer, AnswersNothingForFilesItCannotRead) {
  Symbolizer symbolizer;
  EXPECT_FALSE(symbolizer.Find("/nonexistent/module.so", 0x1000, true).has_value());
  EXPECT_FALSE(symbolizer.Find("libc.so.6", 0x1000, true).has_value());    // not a path
  EXPECT_FALSE(symbolizer.Find("/etc/hostname", 0x10, true).has_value());  // not ELF
  EXPECT_FALSE(symbolizer.AddressOf("/etc/hostname", "main").has_value());
}

}  // namespace
}  // namespace blackbox
