// Reading what the crash handlers wrote (see crash_capture.cpp for the format):
//   BLACKBOX-CRASH 1
//   origin signal|terminate
//   signal <n> / fault_address 0x<hex> / pid <n> / time_ns <n>
//   exception_type <len>\n<bytes>\n        (terminate only, optional)
//   exception_message <len>\n<bytes>\n     (terminate only, optional)
//   exe <len>\n<path>\n / argv0 <len>\n<name>\n   (optional: for naming frames)
//   module <len>\n<build id> <path>\n      (optional, one per loaded module)
//   frames <n>, then n lines from backtrace_symbols_fd
//   end
// Before a record, the Python module's faulthandler may have written the
// Python stack of the crashing thread (its handler runs first and chains to
// ours); its lines `  File "x.py", line 4 in f` become frames "x.py:4 in f"
// after the record's native frames.
#include <cxxabi.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>

#include "crash_capture.h"
#include "symbolizer.h"

namespace blackbox {
namespace {

std::string Demangle(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), &std::free);
  return status == 0 && out ? std::string(out.get()) : name;
}

// "/path/bin(_Z3foov+0x1a) [0x5555]" -> "foo() +0x1a (bin)". A frame without
// a symbol ("bin(+0x1234) [0x...]") is named from the module's file when it
// can be ("(anonymous namespace)::f() +0x10 (bin)"), else it keeps its module
// and offset: "bin+0x1234". With debug information the source line follows:
// " at /src/bin.cpp:42". The main program's frames carry its argv[0] as their
// file (`argv0`), which is read at `exe`, its absolute path. `return_address`
// is false only for the instruction that faulted. A frame inside inlined
// calls gives one line per inlined call first, innermost first:
// "std::vector<int>::operator[](unsigned long) [inlined] (bin) at
// stl_vector.h:1123". Without a symbolizer, only the handler's text is used.
std::vector<std::string> PrettyFrames(const std::string& raw, const std::string& exe,
                                      const std::string& argv0, Symbolizer* symbolizer,
                                      bool return_address) {
  size_t open = raw.find('(');
  size_t close = raw.find(')', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return {raw};
  std::string path = raw.substr(0, open);
  std::string module = path;
  if (size_t slash = module.rfind('/'); slash != std::string::npos) module.erase(0, slash + 1);
  std::string inside = raw.substr(open + 1, close - open - 1);
  size_t plus = inside.rfind('+');
  std::string symbol = inside.substr(0, plus);
  std::string offset = plus == std::string::npos ? std::string() : inside.substr(plus);

  std::optional<Symbolizer::Location> where;
  if (!argv0.empty() && path == argv0 && !exe.empty()) path = exe;
  if (symbolizer != nullptr && offset.size() > 3 && offset.starts_with("+0x")) {
    uint64_t off = std::strtoull(offset.c_str() + 3, nullptr, 16);
    if (symbol.empty()) {
      where = symbolizer->Find(path, off, return_address);
    } else if (auto start = symbolizer->AddressOf(path, symbol)) {
      where = symbolizer->Find(path, *start + off, return_address);
    }
  }
  std::vector<std::string> frames;
  if (where) {
    for (const Symbolizer::Inlined& call : where->inlined) {
      std::string text =
          Demangle(call.function.empty() ? "?" : call.function) + " [inlined] (" + module + ")";
      if (!call.file.empty()) text += fmt::format(" at {}:{}", call.file, call.line);
      frames.push_back(std::move(text));
    }
  }
  std::string out;
  if (!symbol.empty()) {
    out = Demangle(symbol) + " " + offset + " (" + module + ")";
  } else if (where && !where->function.empty()) {
    out = Demangle(where->function) + " +0x" + fmt::format("{:x}", where->offset) + " (" + module +
          ")";
  } else {
    out = module + offset;
  }
  if (where && !where->file.empty()) out += fmt::format(" at {}:{}", where->file, where->line);
  frames.push_back(std::move(out));
  return frames;
}

// The module of a raw backtrace_symbols_fd line: "/lib/x/libc.so.6(...)" -> "libc.so.6".
std::string_view ModuleOf(std::string_view raw) {
  raw = raw.substr(0, raw.find('('));
  if (size_t slash = raw.rfind('/'); slash != std::string_view::npos) raw.remove_prefix(slash + 1);
  return raw;
}

// The C++ runtime's own frames: std::terminate, the unwinder and __cxa_throw.
bool IsRuntimeFrame(std::string_view raw) {
  std::string_view module = ModuleOf(raw);
  return module.starts_with("libstdc++.so") || module.starts_with("libgcc_s.so");
}

// `  File "x.py", line 4 in f` (Python's faulthandler) -> "x.py:4 in f".
std::optional<std::string> PythonFrame(const std::string& line) {
  constexpr std::string_view kFile = "  File \"", kLine = "\", line ", kIn = " in ";
  if (!line.starts_with(kFile)) return std::nullopt;
  size_t file_end = line.rfind(kLine);
  if (file_end == std::string::npos || file_end < kFile.size()) return std::nullopt;
  size_t number = file_end + kLine.size();
  size_t in = line.find(kIn, number);
  if (in == std::string::npos) return std::nullopt;
  return line.substr(kFile.size(), file_end - kFile.size()) + ":" +
         line.substr(number, in - number) + " in " + line.substr(in + kIn.size());
}

}  // namespace

std::vector<fb::CrashT> ReadSpill(const std::string& spill_path, bool name_frames) {
  std::vector<fb::CrashT> records;
  // Only a regular file we could have written: never follow a symlink into
  // some other file and copy it into the journal.
  struct stat st {};
  if (lstat(spill_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return records;
  std::ifstream in(spill_path, std::ios::binary);
  if (!in) return records;
  std::string line;
  fb::CrashT* current = nullptr;
  std::string exe, argv0;                         // of the current record
  std::map<std::string, std::string> build_ids;   // path -> build ID, of the current record
  std::vector<std::string> python_frames;         // written just before the next header
  std::vector<std::string> record_python_frames;  // of the current record
  while (std::getline(in, line)) {
    if (line == "BLACKBOX-CRASH 1") {
      records.emplace_back();
      current = &records.back();
      current->exit_code = -1;
      exe.clear();
      argv0.clear();
      build_ids.clear();
      record_python_frames = std::move(python_frames);
      python_frames.clear();
      continue;
    }
    if (std::optional<std::string> frame = PythonFrame(line)) {
      python_frames.push_back(std::move(*frame));
      continue;
    }
    if (current == nullptr) continue;  // garbage before the first header
    std::istringstream fields(line);
    std::string key;
    fields >> key;
    if (key == "origin") {
      std::string v;
      fields >> v;
      current->origin = v == "terminate" ? fb::CrashOrigin::Terminate : fb::CrashOrigin::Signal;
    } else if (key == "signal") {
      fields >> current->signal;
      current->signal_name = SignalName(current->signal);
    } else if (key == "fault_address") {
      std::string v;
      fields >> v;
      current->fault_address = std::strtoull(v.c_str(), nullptr, 16);
    } else if (key == "pid") {
      fields >> current->crashed_pid;
    } else if (key == "time_ns") {
      fields >> current->crash_time_ns;
    } else if (key == "exception_type" || key == "exception_message" || key == "exe" ||
               key == "argv0" || key == "module") {
      size_t n = 0;
      fields >> n;
      std::string blob(n, '\0');
      in.read(blob.data(), static_cast<std::streamsize>(n));
      blob.resize(static_cast<size_t>(in.gcount()));
      in.ignore(1);  // the newline after the bytes
      if (key == "exception_type") {
        current->exception_type = Demangle(blob);
      } else if (key == "exception_message") {
        current->exception_message = std::move(blob);
      } else if (key == "exe") {
        exe = std::move(blob);
      } else if (key == "argv0") {
        argv0 = std::move(blob);
      } else if (size_t space = blob.find(' '); space != std::string::npos) {
        build_ids[blob.substr(space + 1)] = blob.substr(0, space);  // module: "<id> <path>"
      }
    } else if (key == "frames") {
      size_t n = 0;
      fields >> n;
      std::vector<std::string> raw;
      for (size_t i = 0; i < n && std::getline(in, line); ++i) {
        if (line == "end") break;
        raw.push_back(line);
      }
      // A terminate record starts with the handler and the C++ runtime
      // (terminate, the unwinder, __cxa_throw), the same frames every time:
      // it begins at the application's frame after them instead. A record
      // without such a run, or with nothing after it, keeps every frame.
      auto first = raw.begin();
      if (current->origin == fb::CrashOrigin::Terminate) {
        auto head = raw.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(raw.size(), 3));
        auto runtime = std::find_if(raw.begin(), head, IsRuntimeFrame);
        auto after = std::find_if_not(runtime, raw.end(), IsRuntimeFrame);
        if (runtime != head && after != raw.end()) first = after;
      }
      // Only the first frame of a signal record is the faulting instruction
      // itself; every other frame is a return address.
      std::optional<Symbolizer> symbolizer;
      if (name_frames) {
        symbolizer.emplace(current->crash_time_ns);
        for (const auto& [path, id] : build_ids) symbolizer->ExpectBuildId(path, id);
      }
      for (auto it = first; it != raw.end(); ++it) {
        bool faulted = current->origin == fb::CrashOrigin::Signal && it == raw.begin();
        for (std::string& frame :
             PrettyFrames(*it, exe, argv0, symbolizer ? &*symbolizer : nullptr, !faulted)) {
          current->frames.push_back(std::move(frame));
        }
      }
      for (std::string& frame : record_python_frames) current->frames.push_back(std::move(frame));
      record_python_frames.clear();
    }
  }
  return records;
}

}  // namespace blackbox
