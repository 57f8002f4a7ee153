// Finds and loads libblackbox_watchdog_http.so (http_module.h).
#include <dlfcn.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <vector>

#include "http_module.h"

#ifndef BLACKBOX_HTTP_MODULE_NAME
#error "BLACKBOX_HTTP_MODULE_NAME: the module's file name (watchdog/CMakeLists.txt)"
#endif
#ifndef BLACKBOX_HTTP_MODULE_INSTALL_DIR
#error \
    "BLACKBOX_HTTP_MODULE_INSTALL_DIR: the module's directory relative to the installed executable"
#endif

namespace blackbox::watchdog {
namespace {

std::string ExecutableDir() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return "";
  std::string exe(path, static_cast<size_t>(n));
  size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash);
}

// Only a module that no one else could have put there: owned by root or by
// us, not writable by group or others.
std::string Untrusted(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return fmt::format("{} is not a regular file", path);
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return fmt::format("{} belongs to another user (uid {})", path, st.st_uid);
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return fmt::format("{} is writable by others (mode {:o})", path, st.st_mode & 07777);
  }
  return "";
}

struct Loaded {
  const HttpApi* api = nullptr;
  std::string error;
};

Loaded Load() {
  const std::string dir = ExecutableDir();
  if (dir.empty()) return {nullptr, "cannot find the watchdog's own executable"};
  const std::vector<std::string> candidates = {
      dir + "/" BLACKBOX_HTTP_MODULE_NAME,
      dir + "/" BLACKBOX_HTTP_MODULE_INSTALL_DIR "/" BLACKBOX_HTTP_MODULE_NAME};
  for (const std::string& path : candidates) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (std::string why = Untrusted(path, st); !why.empty()) return {nullptr, why};
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = ::dlerror();
      return {nullptr, fmt::format("cannot load {}: {}", path, e ? e : "unknown error")};
    }
    using Entry = const HttpApi* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(handle, "blackbox_watchdog_http_api"));
    const HttpApi* api = entry ? entry() : nullptr;
    if (api == nullptr || api->version != kHttpModuleVersion || !api->bind || !api->post_json) {
      return {nullptr,
              fmt::format("{} is not this watchdog's HTTP module (another version?)", path)};
    }
    return {api, ""};  // never unloaded
  }
  return {nullptr,
          fmt::format("its HTTP module {} is in neither {} nor {}", BLACKBOX_HTTP_MODULE_NAME, dir,
                      dir + "/" BLACKBOX_HTTP_MODULE_INSTALL_DIR)};
}

}  // namespace

const HttpApi* LoadHttpModule(std::string* error) {
  static const Loaded loaded = Load();
  if (loaded.api == nullptr && error != nullptr) *error = loaded.error;
  return loaded.api;
}

}  // namespace blackbox::watchdog
