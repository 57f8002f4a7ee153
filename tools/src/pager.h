// A pager for long output on a terminal, as journalctl and git have one.
//
// When stdout is a terminal, StartPager() runs the pager with a pipe as its
// stdin and makes that pipe our stdout. The pager is $BLACKBOX_PAGER, else
// $PAGER, else `less -FRSXM` when `less` is on the PATH (otherwise none). An
// empty value or `cat` means no pager. A value without shell metacharacters
// is split at blanks and run directly; one with them runs under `sh -c` (as
// git does). LESS=FRSXM and LESSCHARSET=utf-8 are set for the pager unless
// already set.
//
// The pager may quit before it read everything (the user pressed q): writes
// then fail with EPIPE (SIGPIPE is ignored while a pager runs), commands stop
// producing (StdoutGone) and exit with their usual status, quietly.
#pragma once

namespace blackbox::tools {

// Starts the pager if stdout is a terminal and `disabled` (--no-pager) is
// false. Call once arguments are checked, before the first output. A pager
// that cannot be started is reported on stderr and output goes to the
// terminal as without one.
void StartPager(bool disabled);

// Whether stdout is a terminal, as it was before a pager took it over (so
// colour is still chosen for the terminal the pager draws on).
bool StdoutIsTerminal();

// True when a pager runs and has stopped reading: nothing more can be shown.
bool StdoutGone();

// Flushes stdout. Throws ToolError (exit 1) "cannot write to stdout" when
// that fails, unless the pager went away (then the rest is dropped quietly).
void FinishStdout();

// Flushes stdout, closes the pipe and waits for the pager to exit, so that
// the shell's prompt comes back after the pager is done. Does nothing without
// a pager; safe to call more than once.
void ClosePager();

}  // namespace blackbox::tools
