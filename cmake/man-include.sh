#!/bin/sh
# Writes a help2man include file for PROGRAM (cmake/ManPages.cmake): the
# examples of its --help as a verbatim block (help2man would join them into
# one line), the text after them as their own paragraph, and, for each
# SUBCOMMAND given, that subcommand's whole --help as a verbatim block.
#
#   man-include.sh PROGRAM SEE_ALSO [SUBCOMMAND...] > PROGRAM.h2m
set -eu
program=$1
see_also=$2
shift 2

verbatim() {
  # Escapes what roff would read as a request or an escape.
  sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"
}

help=$("$program" --help)
printf '[=EXAMPLES]\n.nf\n'
printf '%s\n' "$help" | awk '/^Examples:/ {on=1; next} on && /^[^ ]/ {exit} on {sub(/^  /, ""); print}' | verbatim
printf '.fi\n'
# What follows the examples: a pointer to the commands' help, then the exit
# statuses ("Exit status: ..."), which get a section of their own.
after=$(printf '%s\n' "$help" | awk '/^Examples:/ {on=1; next} on && /^[^ ]/ {rest=1} rest {print}')
before_status=$(printf '%s\n' "$after" | awk '/^Exit status/ {exit} {print}')
if [ -n "$before_status" ]; then
  printf '.PP\n'
  printf '%s\n' "$before_status" | verbatim
fi
status=$(printf '%s\n' "$after" | awk '/^Exit status/ {on=1; sub(/^Exit status: */, "")} on {print}')
if [ -n "$status" ]; then
  printf '[EXIT STATUS]\n.nh\n.ad l\n'
  printf '%s\n' "$status" | verbatim
fi

if [ $# -gt 0 ]; then
  printf '[COMMANDS]\n'
  for command in "$@"; do
    printf '.SS %s\n.nf\n' "$command"
    "$program" "$command" --help | verbatim
    printf '.fi\n'
  done
fi

printf '[SEE ALSO]\n%s\n' "$see_also"
