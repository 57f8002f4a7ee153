// <stream dir>/HIGH_WATER: see high_water.h.
#include "high_water.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "unique_fd.h"

namespace blackbox::internal {
namespace {

constexpr std::string_view kTempPrefix = "HIGH_WATER.tmp.";

// Reads a number ended by `end` from the front of `text`.
bool ParseNumber(std::string_view& text, uint64_t* value, char end) {
  auto [stop, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  if (ec != std::errc() || stop == text.data() + text.size() || *stop != end) return false;
  text.remove_prefix(static_cast<size_t>(stop - text.data()) + 1);
  return true;
}

bool ParseNumberLine(std::string_view& text, uint64_t* value) {
  return ParseNumber(text, value, '\n');
}

// Reads "<name> <number><end>" from the front of `text`.
bool ParseField(std::string_view& text, std::string_view name, uint64_t* value, char end = '\n') {
  if (text.substr(0, name.size()) != name || text.size() <= name.size() ||
      text[name.size()] != ' ') {
    return false;
  }
  text.remove_prefix(name.size() + 1);
  return ParseNumber(text, value, end);
}

}  // namespace

Result<HighWater> ReadHighWater(const std::string& dir) {
  const std::string path = dir + "/" + kHighWaterFile;
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return HighWater{};
    return Errno("cannot open", path, errno);
  }
  // Two fields and at most kHighWaterUnusedKept ranges fit with room to spare.
  char buf[2048];
  size_t len = 0;
  while (len < sizeof buf) {
    ssize_t n = ::read(fd.get(), buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read", path, errno);
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  std::string_view text(buf, len);
  auto bad = [&] { return Status::Corruption(fmt::format("{} is not a high-water mark", path)); };
  HighWater mark;
  if (len == sizeof buf || !ParseField(text, "reserved", &mark.reserved) ||
      !ParseField(text, "floor", &mark.floor)) {
    return bad();
  }
  while (!text.empty()) {
    SeqRange r;
    if (!ParseField(text, "unused", &r.first, ' ') || !ParseNumberLine(text, &r.last) ||
        r.last < r.first) {
      return bad();
    }
    mark.unused.push_back(r);
  }
  return mark;
}

Status WriteHighWater(const std::string& dir, const HighWater& mark) {
  const std::string path = dir + "/" + kHighWaterFile;
  std::string temp = fmt::format("{}/{}XXXXXX", dir, kTempPrefix);
  // mkstemp: a new file (O_EXCL, so never through a planted symlink), 0600.
  Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (fd.get() < 0) return Errno("cannot create", temp, errno);
  std::string text = fmt::format("reserved {}\nfloor {}\n", mark.reserved, mark.floor);
  const size_t skip =
      mark.unused.size() > kHighWaterUnusedKept ? mark.unused.size() - kHighWaterUnusedKept : 0;
  for (size_t i = skip; i < mark.unused.size(); ++i) {
    text += fmt::format("unused {} {}\n", mark.unused[i].first, mark.unused[i].last);
  }
  auto fail = [&](std::string_view what, int err) {
    ::unlink(temp.c_str());
    return Errno(what, temp, err);
  };
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write", errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot fsync", errno);
  if (::close(fd.Release()) != 0) return fail("cannot close", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail("cannot rename", errno);
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir_fd.get() < 0) return Errno("cannot open", dir, errno);
  if (::fsync(dir_fd.get()) != 0) return Errno("cannot fsync", dir, errno);
  return Status::Ok();
}

void RemoveTemporaries(const std::string& dir, std::string_view prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (name.substr(0, prefix.size()) == prefix) {
      // unlink never follows a symlink: a planted one is removed, not its target.
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
  ::closedir(d);
}

void RemoveHighWaterTemporaries(const std::string& dir) { RemoveTemporaries(dir, kTempPrefix); }

}  // namespace blackbox::internal
