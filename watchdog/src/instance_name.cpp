#include "instance_name.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "control.h"

namespace blackbox::watchdog {
namespace {

constexpr size_t kMaxNameLength = 64;

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '@';
}

}  // namespace

std::optional<std::string> CheckName(std::string_view name) {
  if (name.empty()) return std::string("must not be empty");
  if (name.size() > kMaxNameLength) {
    return fmt::format("'{}' is longer than {} characters", name, kMaxNameLength);
  }
  if (name.front() == '.') return fmt::format("'{}' must not start with '.'", name);
  for (char c : name) {
    if (!NameChar(c)) {
      return fmt::format("'{}' may hold only letters, digits and . _ - @", name);
    }
  }
  return std::nullopt;
}

std::string DefaultName(std::string_view program) {
  std::string base(std::filesystem::path(program).filename().string());
  for (char& c : base) {
    if (!NameChar(c)) c = '_';
  }
  while (!base.empty() && base.front() == '.') base.erase(0, 1);
  if (base.size() > kMaxNameLength) base.resize(kMaxNameLength);
  return base;
}

std::string StateRoot() {
  if (const char* root = std::getenv("BLACKBOX_STATE_ROOT"); root != nullptr && root[0] == '/') {
    return root;
  }
  if (::geteuid() == 0) return "/run/blackbox";
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return fmt::format("{}/blackbox", runtime);
  return fmt::format("/tmp/blackbox-{}", ::geteuid());
}

Result<std::string> EnsureStateRoot() {
  const std::string root = StateRoot();
  // mkdir, not create_directories: the parent (/run, $XDG_RUNTIME_DIR, /tmp)
  // must exist already; only the last component is ours to create.
  if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IOError(fmt::format("state directory root {}: {}", root, std::strerror(errno)));
  }
  if (Status st = CheckStateDir(root, /*must_own=*/true); !st.ok()) {
    return Status::InvalidArgument(fmt::format("state directory root: {}", st.message()));
  }
  return root;
}

std::vector<std::string> ListNames(const std::string& root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (CheckName(name)) continue;
    std::error_code entry_ec;
    if (!entry.is_directory(entry_ec) || entry.is_symlink(entry_ec)) continue;
    if (!std::filesystem::exists(entry.path() / kPidFileName, entry_ec)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace blackbox::watchdog
