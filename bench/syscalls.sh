#!/usr/bin/env bash
# syscalls.sh [BUILD_DIR] [CASE] — the system calls the calling thread makes
# inside a loop of hvn_publisher_report(), counted by strace.
#
# bench_report --probe CASE runs one case between two getppid() calls; this
# prints the calls the measuring thread (the process's main thread) made
# between those markers. The publisher's actor and libzmq's I/O thread are
# other threads and are left out: they are the library's background work,
# not the caller's cost.
set -euo pipefail
build=${1:-build}
case_name=${2:-unchanged}
iterations=${ITERATIONS:-100000}
trace=$(mktemp /tmp/hvn-syscalls-XXXXXX)
trap 'rm -f "$trace"' EXIT

strace -f -qq -o "$trace" "$build/bin/bench_report" --probe "$case_name" --iterations "$iterations" >/dev/null
main=$(head -1 "$trace" | awk '{print $1}')
awk -v main="$main" '
  $1 == main && $2 ~ /^getppid\(/ { inside = !inside; marks++; next }
  $1 == main && inside && $2 != "<..." { split($2, call, "("); count[call[1]]++; total++ }
  END {
    if (marks < 2) { print "syscalls.sh: markers not found" > "/dev/stderr"; exit 1 }
    printf "%d system calls by the calling thread in the measured loop\n", total
    for (c in count) printf "  %-20s %d\n", c, count[c]
  }' "$trace"
echo "($iterations calls of report(), case $case_name; warm-up calls are outside the markers)"
