// Where a command writes its result: stdout ("-") or a file that appears
// atomically. A file is written to a temporary in the same directory (mode
// 0600), fsync'd, and renamed over `path` only by Commit(); if the command
// fails first, the temporary is removed and `path` is untouched.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace blackbox::tools {

class OutputFile {
 public:
  // Opens `path` ("-" = stdout). Throws ToolError (exit 2) when the
  // temporary cannot be created, e.g. the directory does not exist.
  explicit OutputFile(const std::string& path);
  // Removes the temporary unless Commit() succeeded.
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Writes `text`. Write errors are remembered and reported by Commit().
  // For a file, every few megabytes the kernel is asked to start writing
  // back what came before, so that the fsync in Commit() finds little left
  // to do: the disk works while the command is still producing.
  void Write(std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), file_);
    written_ += text.size();
    if (written_ - written_back_ >= kWritebackChunk && !temp_path_.empty()) StartWriteback();
  }
  std::FILE* file() const { return file_; }

  // Flushes; for a file also fsyncs, renames into place and fsyncs the
  // directory. Throws ToolError (exit 1) on any failure (disk full, …).
  void Commit();

 private:
  std::string path_;
  std::string temp_path_;  // empty for stdout
  static constexpr uint64_t kWritebackChunk = 8 << 20;
  void StartWriteback();

  std::FILE* file_ = nullptr;
  bool committed_ = false;
  uint64_t written_ = 0;       // bytes passed to Write()
  uint64_t written_back_ = 0;  // bytes whose writeback StartWriteback() started
};

// Gives stdout a large buffer: the timeline is written line by line.
void UseLargeStdoutBuffer();

}  // namespace blackbox::tools
