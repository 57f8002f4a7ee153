// Filesystem helpers: stream listing, permission checks, sizes, status mapping.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "internal.h"

namespace blackbox {

namespace fs = std::filesystem;

Result<std::vector<std::string>> ListStreams(std::string_view root) {
  std::error_code ec;
  fs::directory_iterator it(fs::path(root), ec);
  if (ec) return Status::IOError(fmt::format("cannot list journal {}: {}", root, ec.message()));
  std::vector<std::string> streams;
  for (const auto& entry : it) {
    std::error_code ec2;
    // A stream is a directory holding a RocksDB database (it has CURRENT).
    if (entry.is_directory(ec2) && fs::exists(entry.path() / "CURRENT", ec2)) {
      streams.push_back(entry.path().filename().string());
    }
  }
  std::sort(streams.begin(), streams.end());
  return streams;
}

std::string_view StreamOrigin(std::string_view stream) {
  const size_t at = stream.find(".damaged-");
  return at == std::string_view::npos || at == 0 ? stream : stream.substr(0, at);
}

Status CheckRootPermissions(std::string_view root, JournalAccess access) {
  struct stat st {};
  std::string path(root);
  // lstat: the journal's directories are its own, never a link to somewhere
  // else (a link planted by whoever could write the parent would redirect the
  // database into its target).
  if (lstat(path.c_str(), &st) != 0) {
    return Status::NotFound(fmt::format("journal directory {} does not exist", root));
  }
  if (S_ISLNK(st.st_mode)) {
    return Status::InvalidArgument(
        fmt::format("journal directory {} is a symbolic link; give the directory itself", root));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(fmt::format("journal path {} is not a directory", root));
  }
  // Refused, not repaired: another user could plant or swap streams there, so
  // its events prove nothing. The message never proposes a chmod: the
  // directory may be shared (/tmp), and narrowing it would break its owners.
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::InvalidArgument(fmt::format(
        "journal directory {} is writable by other users (mode {:04o}), who could plant or "
        "replace its events; refused. Use a journal directory that only you can write",
        root, st.st_mode & 07777));
  }
  // A reader may read another user's journal (root reading the service's);
  // a writer would create files there that its owner then cannot manage, or
  // write into a directory its owner prepared for it.
  if (access == JournalAccess::kWrite && st.st_uid != geteuid()) {
    return Status::InvalidArgument(fmt::format(
        "journal directory {} is owned by uid {}, not by the running user (uid {}); write to "
        "it as its owner",
        root, st.st_uid, geteuid()));
  }
  return Status::Ok();
}

uint64_t DirectorySize(std::string_view dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(fs::path(dir), ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) total += it->file_size(ec2);
  }
  return total;
}

namespace internal {

std::string StreamPath(std::string_view root, std::string_view stream) {
  return (fs::path(root) / fs::path(stream)).string();
}

void CloseJournalDb(std::unique_ptr<rocksdb::DB>& db, rocksdb::ColumnFamilyHandle*& events_cf,
                    rocksdb::ColumnFamilyHandle*& snapshots_cf) {
  if (!db) return;
  if (snapshots_cf != nullptr) db->DestroyColumnFamilyHandle(snapshots_cf);
  snapshots_cf = nullptr;
  events_cf = nullptr;
  db->Close();
  db.reset();
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string msg = fmt::format("{}: {}", what, s.ToString());
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) return Status::NoSpace(msg);
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || s.IsTryAgain()) return Status::Busy(msg);
  // RocksDB reports a held LOCK as an IOError "lock hold by current process" or
  // "While lock file: … Resource temporarily unavailable".
  if (s.IsIOError() && (s.ToString().find("lock") != std::string::npos ||
                        s.ToString().find("LOCK") != std::string::npos)) {
    return Status::Busy(msg);
  }
  return Status::IOError(msg);
}

}  // namespace internal
}  // namespace blackbox
