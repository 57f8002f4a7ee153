#!/usr/bin/env bash
# The bash completion (completions/blackbox.bash) against the real programs:
# each case completes a command line and checks the words offered.
#
#   completion_test.sh COMPLETION_FILE BIN_DIR
set -u
source "$1"
PATH=$2:$PATH
failures=0

# expect FUNCTION "WORDS OFFERED" WORD...: completes the last WORD.
expect() {
  local function=$1 want=$2
  shift 2
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  "$function"
  local got="${COMPREPLY[*]}"
  if [[ $got != "$want" ]]; then
    echo "FAIL: '$*' offered [$got], expected [$want]"
    failures=$((failures + 1))
  fi
}

# contains FUNCTION WORD... ::: EXPECTED...: every EXPECTED is offered.
contains() {
  local function=$1
  shift
  local -a words=()
  while [[ $1 != ::: ]]; do
    words+=("$1")
    shift
  done
  shift
  COMP_WORDS=("${words[@]}")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  "$function"
  local want
  for want in "$@"; do
    if ! printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$want"; then
      echo "FAIL: '${words[*]}' did not offer $want (offered: ${COMPREPLY[*]})"
      failures=$((failures + 1))
    fi
  done
}

contains _blackbox blackbox "" ::: replay crashes state export import compact verify stats
expect _blackbox "replay" blackbox rep
expect _blackbox "--since --stream" blackbox replay --s
expect _blackbox "show" blackbox --journal /tmp crashes ""
contains _blackbox blackbox crashes show -- ::: --before --json
contains _blackbox blackbox replay --type "" ::: error crash health restart
expect _blackbox "short json json-pretty cat" blackbox replay -o ""
expect _blackbox "json json-pretty" blackbox replay --output js
expect _blackbox "debug info warning error critical" blackbox replay -p ""
contains _blackbox blackbox -- ::: --no-pager
contains _blackbox blackbox crashes -- ::: --since --until
contains _blackbox blackbox replay -- ::: --reverse --priority --pid --output --utc
contains _blackbox blackbox -- ::: --journal --help --version
contains _blackbox_watchdog blackbox-watchdog --max ::: --max-cpu --max-memory --max-restarts
contains _blackbox_watchdog blackbox-watchdog --restart "" ::: always on-failure
contains _blackbox_watchdog blackbox-watchdog -- bas ::: bash
if ((failures > 0)); then
  echo "$failures completion case(s) failed"
  exit 1
fi
echo "completion: every case passed"
