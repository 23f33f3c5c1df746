#!/bin/sh
# Writes the manual page of one program from its --help and --version,
# which both come from its option table (common/hvn_opt.h).
#   man.sh HELP2MAN PROGRAM OUTPUT
set -eu
help2man=$1 program=$2 output=$3
# The NAME line is the summary's first sentence (the summary is the
# paragraph after the Usage line).
name=$("$program" --help | awk 'NR >= 2 && NF == 0 {exit} NR >= 2 {printf "%s ", $0}' |
       sed 's/[.;:] .*//; s/[.;: ]*$//')
"$help2man" --no-info --section 1 --source hvnotify --name "$name" --output "$output" "$program"
