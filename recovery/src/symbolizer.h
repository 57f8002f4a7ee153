// Names crash frames from the files on disk, after the crash.
//
// The crash handler can only use the dynamic symbol table
// (backtrace_symbols_fd), which holds exported functions and nothing else:
// a frame in a static or anonymous-namespace function, or in the cold part of
// a function (where GCC puts throw and error paths), is written as
// module+offset. At the next start, ReadSpill asks this class instead; it reads
// the module's full symbol table and, when the module has debug information,
// its line table (elfutils libdwfl), so a frame reads
// "name() +0x1a (module) at file.cpp:42".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace blackbox {

class Symbolizer {
 public:
  // A module's file is read only when it is the build that crashed: when its
  // build ID is the one given to ExpectBuildId for its path, or, for a path
  // without one, when it has not changed after `not_after_ns` (wall clock, ns;
  // the crash time; 0 accepts any file).
  explicit Symbolizer(int64_t not_after_ns = 0);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // A call the compiler inlined: the function it called (mangled when the
  // debug information has a linkage name) and the place inside it.
  struct Inlined {
    std::string function;
    std::string file;
    int line = 0;
  };
  struct Location {
    std::string function;  // mangled, as in the symbol table; may be empty
    uint64_t offset = 0;   // from the function's start
    // The place in `function`, from the debug information; empty without it.
    // With inlined calls, the place of the outermost one's call.
    std::string file;
    int line = 0;
    // The inlined calls the address is in, innermost first (needs debug
    // information): what a debugger shows as frames of their own.
    std::vector<Inlined> inlined;
  };

  // The place of `address`, a module-relative address (the "+0x..." that
  // backtrace_symbols_fd prints for a frame without a symbol), in the module
  // at `path`. `return_address` looks up address - 1, which is inside the
  // call instruction: a return address may point past the end of a function
  // that ends in a call that never returns.
  std::optional<Location> Find(const std::string& path, uint64_t address, bool return_address);

  // The build ID (hex) the module at `path` had when it crashed. Call before
  // the first lookup in that module.
  void ExpectBuildId(const std::string& path, const std::string& build_id);

  // The module-relative address of `symbol` (mangled) in the module at
  // `path`, to place a frame backtrace_symbols_fd wrote as symbol+offset.
  std::optional<uint64_t> AddressOf(const std::string& path, const std::string& symbol);

 private:
  struct Module;
  Module* Open(const std::string& path);

  int64_t not_after_ns_;
  std::map<std::string, std::string> build_ids_;            // path -> expected build ID
  std::map<std::string, std::unique_ptr<Module>> modules_;  // null: unreadable
};

}  // namespace blackbox
