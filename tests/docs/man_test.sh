#!/usr/bin/env bash
# The generated man pages (cmake/ManPages.cmake): valid roff without warnings,
# with the sections and every subcommand a reader looks for.
#
#   man_test.sh MAN_DIR
set -eu
dir=$1
failures=0
check() {
  local page=$1
  shift
  if [[ ! -s $page ]]; then
    echo "FAIL: $page was not generated"
    failures=$((failures + 1))
    return
  fi
  local warnings
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  if [[ -n $warnings ]]; then
    echo "FAIL: groff warns about $page: $warnings"
    failures=$((failures + 1))
  fi
  local text
  text=$(groff -man -Tascii -P-cbou "$page" 2>/dev/null)
  local want
  for want in "$@"; do
    if ! grep -qF -- "$want" <<<"$text"; then
      echo "FAIL: $page has no '$want'"
      failures=$((failures + 1))
    fi
  done
}
check "$dir/blackbox.1" NAME SYNOPSIS OPTIONS COMMANDS EXAMPLES "SEE ALSO" \
  "blackbox replay --since -10m" "Usage: blackbox replay" "Usage: blackbox crashes" \
  "Usage: blackbox verify" "EXIT STATUS" "2 bad arguments" "blackbox-watchdog(1)"
check "$dir/blackbox-watchdog.1" NAME SYNOPSIS OPTIONS "--max-restarts" "blackbox(1)"
if ((failures > 0)); then exit 1; fi
echo "man pages: ok"
