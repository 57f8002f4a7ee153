# bash completion for blackbox and blackbox-watchdog.
#
# The option and command lists are read from the programs' own --help when
# completing, so they never drift from the programs. Installed as
# share/bash-completion/completions/{blackbox,blackbox-watchdog}; to try it
# from a build tree: source completions/blackbox.bash

# The long and short options in the --help of "$@".
_blackbox_options() {
  "$@" --help 2>/dev/null |
    grep -oE '(^|[ ,])--?[A-Za-z][-A-Za-z0-9]*' | sed -E 's/^[ ,]//' | sort -u
}

# The subcommands listed under "Subcommands:" in the --help of "$@".
_blackbox_subcommands() {
  "$@" --help 2>/dev/null |
    awk '/^Subcommands:/ {on=1; next} on && /^[^ ]/ {exit} on && NF {print $1}'
}

# The words listed after "): " on the help line of option $1 in "${@:2}" --help,
# e.g. "--type TEXT ...  Only this event type (repeatable): error, crash, ...".
_blackbox_option_words() {
  local option=$1
  shift
  "$@" --help 2>/dev/null | grep -E "^ +$option " | sed -n 's/.*): //p' |
    tr ',' '\n' | sed -E 's/^ +//; s/ .*//' | grep -E '^[a-z][-a-z]*$'
}

_blackbox() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local program=${COMP_WORDS[0]} i word
  local -a command=("$program")
  COMPREPLY=()

  case $prev in
    --journal | --textfile | --out | --file)
      if [[ $prev == --journal ]]; then
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
      else
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      fi
      return 0
      ;;
    --type | --stream)
      mapfile -t COMPREPLY < <(compgen -W "$(_blackbox_option_words "$prev" "${command[@]}" replay)" -- "$cur")
      return 0
      ;;
    -o | --output | -p | --priority)
      # Their help line starts "-o,--output" / "-p,--priority".
      [[ $prev == -o || $prev == --output ]] && prev=-o,--output || prev=-p,--priority
      mapfile -t COMPREPLY < <(compgen -W "$(_blackbox_option_words "$prev" "${command[@]}" replay)" -- "$cur")
      return 0
      ;;
  esac

  # The subcommand path so far (blackbox crashes show ...), skipping options
  # and the value of --journal.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == --journal ]]; then
      ((i++))
    elif [[ $word != -* ]] && _blackbox_subcommands "${command[@]}" | grep -qxF -- "$word"; then
      command+=("$word")
    fi
  done

  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_blackbox_options "${command[@]}")" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -W "$(_blackbox_subcommands "${command[@]}")" -- "$cur")
  fi
  return 0
}

# The names of this user's watchdogs: the directories of the default state
# root (blackbox-watchdog --help, --name).
_blackbox_watchdog_names() {
  local root
  if [[ $EUID -eq 0 ]]; then
    root=/run/blackbox
  else
    root=${XDG_RUNTIME_DIR:-/nonexistent}/blackbox
  fi
  [[ -d $root ]] && find "$root" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null
}

_blackbox_watchdog() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} i
  COMPREPLY=()

  # After "--" comes the command to supervise and its arguments.
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} == -- ]]; then
      if ((i + 1 == COMP_CWORD)); then
        mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u)
      elif declare -F _command_offset >/dev/null; then
        _command_offset $((i + 1))
      else
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      fi
      return 0
    fi
  done

  case $prev in
    --journal | --state-dir)
      mapfile -t COMPREPLY < <(compgen -d -- "$cur")
      return 0
      ;;
    --log-file | --config | --app-script | --alert-exec)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return 0
      ;;
    --status | --stop)
      if [[ $cur != -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_blackbox_watchdog_names)" -- "$cur")
        return 0
      fi
      ;;
    --restart)
      mapfile -t COMPREPLY < <(compgen -W "always on-failure $(_blackbox_watchdog_names)" -- "$cur")
      return 0
      ;;
  esac

  mapfile -t COMPREPLY < <(compgen -W "$(_blackbox_options "${COMP_WORDS[0]}")" -- "$cur")
  return 0
}

complete -F _blackbox blackbox
complete -F _blackbox_watchdog blackbox-watchdog
