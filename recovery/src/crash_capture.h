// In-process capture of fatal crashes.
//
// A signal handler may not allocate or touch RocksDB, so a crash is written
// with async-signal-safe calls only (write, backtrace_symbols_fd) to a spill
// file opened in advance; the next start reads the spill (ReadSpill) and
// journals it. The handler runs on an alternate stack so that a stack
// overflow of the installing thread is captured too, then re-raises the
// signal with its default action: the exit status and core dump stay true.
#pragma once

#include <string>
#include <vector>

#include "blackbox/event.h"

namespace blackbox {

// Opens `spill_path` (truncating it when `truncate`, else appending) and
// installs handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and
// std::terminate. Returns false when the spill cannot be opened (then
// `error`, when given, says why: a symlink, a file of another user, errno) or
// another owner installed them already (`error` untouched).
bool InstallCrashCapture(const std::string& spill_path, bool truncate,
                         std::string* error = nullptr);
// Restores the previous handlers and closes the spill.
void UninstallCrashCapture();
// Gives the calling thread an alternate signal stack (owned by the thread),
// so that its stack overflow is captured too.
void EnsureAltStackForThisThread();

// The GNU build ID of the main program, in hex ("" when it was linked
// without one). Recorded at start, so that a crash can be told apart by the
// build it happened in (`blackbox crashes --group`).
std::string MainProgramBuildId();

// The crash records of a spill file, oldest first, frames demangled.
// An unreadable or empty file gives no records; a record cut short by the
// dying process keeps what was written. With `name_frames`, frames are named
// from the modules' files too (symbolizer.h); without, they are what the
// crash handler wrote.
std::vector<fb::CrashT> ReadSpill(const std::string& spill_path, bool name_frames = true);

}  // namespace blackbox
