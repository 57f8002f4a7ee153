#include "symbolizer.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

namespace blackbox {

struct Symbolizer::Module {
  Dwfl* dwfl = nullptr;
  Dwfl_Module* module = nullptr;
  Dwarf_Addr bias = 0;  // the module's address of the file's address 0
  bool names_indexed = false;
  std::unordered_map<std::string, uint64_t> address_of;  // filled on first AddressOf

  ~Module() {
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
};

namespace {

// The module's GNU build ID in hex, "" without one.
std::string BuildId(Dwfl_Module* module) {
  const unsigned char* id = nullptr;
  GElf_Addr vaddr = 0;
  int n = dwfl_module_build_id(module, &id, &vaddr);
  std::string hex;
  for (int i = 0; i < n; ++i) hex += fmt::format("{:02x}", id[i]);
  return hex;
}

// Separate debug information is looked for on the local disk only, by build
// ID, where Debian's -dbgsym packages put it
// (/usr/lib/debug/.build-id/ab/cdef....debug). libdwfl's standard lookup
// would also ask a debuginfod server whenever DEBUGINFOD_URLS is set in the
// environment: a restart must never wait on the network.
int FindLocalDebuginfo(Dwfl_Module* module, void**, const char*, Dwarf_Addr, const char*,
                       const char*, GElf_Word, char** debuginfo_file_name) {
  std::string id = BuildId(module);
  if (id.size() < 4) return -1;
  std::string path = "/usr/lib/debug/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && debuginfo_file_name != nullptr) *debuginfo_file_name = strdup(path.c_str());
  return fd;
}

// Every module is reported with its file, so libdwfl never needs to look for
// one (the standard finder would ask debuginfod too).
int NoElfLookup(Dwfl_Module*, void**, const char*, Dwarf_Addr, char**, Elf**) { return -1; }

const Dwfl_Callbacks kCallbacks = {
    .find_elf = NoElfLookup,
    .find_debuginfo = FindLocalDebuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = nullptr,
};

std::string ScopeName(Dwarf_Die* scope) {
  Dwarf_Attribute attr;
  for (int at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name, DW_AT_name}) {
    // _integrate: the name is on the abstract origin, not on the inlined copy.
    if (const char* name = dwarf_formstring(dwarf_attr_integrate(scope, at, &attr))) return name;
  }
  return "";
}

// Walks the debug information's scopes at `pc` from the innermost out: each
// inlined call becomes an entry of where.inlined holding the place found so
// far, and its call site becomes the place in the function around it.
void AddInlinedCalls(Dwfl_Module* module, GElf_Addr pc, Symbolizer::Location& where) {
  Dwarf_Addr cu_bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(module, pc, &cu_bias);
  if (cu == nullptr) return;
  Dwarf_Die* scopes = nullptr;
  int n = dwarf_getscopes(cu, pc - cu_bias, &scopes);
  if (n <= 0) return;
  Dwarf_Files* files = nullptr;
  size_t nfiles = 0;
  if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0) files = nullptr;
  for (int i = 0; i < n; ++i) {
    int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_subprogram) break;
    if (tag != DW_TAG_inlined_subroutine) continue;
    where.inlined.push_back({ScopeName(&scopes[i]), where.file, where.line});
    Dwarf_Attribute attr;
    Dwarf_Word file_index = 0;
    Dwarf_Word line = 0;
    const char* file = nullptr;
    if (files != nullptr &&
        dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &file_index) == 0) {
      file = dwarf_filesrc(files, file_index, nullptr, nullptr);
    }
    dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &line);
    where.file = file != nullptr ? file : "";
    where.line = static_cast<int>(line);
  }
  free(scopes);
}

}  // namespace

Symbolizer::Symbolizer(int64_t not_after_ns) : not_after_ns_(not_after_ns) {}

Symbolizer::~Symbolizer() = default;

Symbolizer::Module* Symbolizer::Open(const std::string& path) {
  auto [it, inserted] = modules_.try_emplace(path);
  if (!inserted) return it->second.get();

  struct stat st {};
  if (path.empty() || path[0] != '/' || stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return nullptr;
  }
  auto expected = build_ids_.find(path);
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (expected == build_ids_.end() && not_after_ns_ != 0 && mtime_ns > not_after_ns_) {
    return nullptr;  // changed since the crash
  }

  auto m = std::make_unique<Module>();
  m->dwfl = dwfl_begin(&kCallbacks);
  if (m->dwfl == nullptr) return nullptr;
  // Placed at 0, so that the module's addresses are the file's own: the
  // addresses backtrace_symbols_fd prints relative to the load address.
  dwfl_report_begin(m->dwfl);
  m->module = dwfl_report_elf(m->dwfl, path.c_str(), path.c_str(), -1, 0, false);
  if (m->module == nullptr || dwfl_report_end(m->dwfl, nullptr, nullptr) != 0) return nullptr;
  if (dwfl_module_getelf(m->module, &m->bias) == nullptr) return nullptr;
  if (expected != build_ids_.end() && BuildId(m->module) != expected->second) {
    return nullptr;  // another build at the same path
  }
  it->second = std::move(m);
  return it->second.get();
}

std::optional<Symbolizer::Location> Symbolizer::Find(const std::string& path, uint64_t address,
                                                     bool return_address) {
  Module* m = Open(path);
  if (m == nullptr) return std::nullopt;
  GElf_Addr pc = address + m->bias - (return_address && address > 0 ? 1 : 0);

  Location where;
  GElf_Off offset = 0;
  GElf_Sym sym{};
  if (const char* name =
          dwfl_module_addrinfo(m->module, pc, &offset, &sym, nullptr, nullptr, nullptr)) {
    where.function = name;
    where.offset = offset + (return_address && address > 0 ? 1 : 0);
  }
  // The line table answers with the nearest row at or before `pc`, which for
  // code without line information (_start) is a row of some other function:
  // a row before the function's own start is not this frame's.
  GElf_Addr function_start = where.function.empty() ? 0 : pc - offset;
  if (Dwfl_Line* line = dwfl_module_getsrc(m->module, pc)) {
    Dwarf_Addr row = 0;
    int lineno = 0;
    const char* file = dwfl_lineinfo(line, &row, &lineno, nullptr, nullptr, nullptr);
    if (file != nullptr && row >= function_start) {
      where.file = file;
      where.line = lineno;
    }
  }
  if (!where.file.empty()) AddInlinedCalls(m->module, pc, where);
  if (where.function.empty() && where.file.empty()) return std::nullopt;
  return where;
}

void Symbolizer::ExpectBuildId(const std::string& path, const std::string& build_id) {
  build_ids_[path] = build_id;
}

std::optional<uint64_t> Symbolizer::AddressOf(const std::string& path, const std::string& symbol) {
  Module* m = Open(path);
  if (m == nullptr) return std::nullopt;
  if (!m->names_indexed) {
    m->names_indexed = true;
    int n = dwfl_module_getsymtab(m->module);
    for (int i = 1; i < n; ++i) {
      GElf_Sym sym{};
      GElf_Addr addr = 0;
      const char* name =
          dwfl_module_getsym_info(m->module, i, &sym, &addr, nullptr, nullptr, nullptr);
      if (name == nullptr || *name == '\0' || GELF_ST_TYPE(sym.st_info) != STT_FUNC) continue;
      m->address_of.emplace(name, addr - m->bias);
    }
  }
  auto it = m->address_of.find(symbol);
  if (it == m->address_of.end()) return std::nullopt;
  return it->second;
}

}  // namespace blackbox
