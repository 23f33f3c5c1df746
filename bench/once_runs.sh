#!/bin/sh
# once_runs.sh — runs the two-broker plain-mode check (tests/integration/
# test_once.c: hvn-sub on two brokers, one killed mid-stream, each
# notification printed exactly once) many times and counts the runs that
# passed. Not a ctest: the acceptance asks for 50 runs in a row.
#
#   bench/once_runs.sh [BUILD_DIR] [RUNS]      (defaults: build, 50)
#
# Exit 0 when every run passed, 1 otherwise.
build=${1:-build}
runs=${2:-50}
test="$build/tests/it_test_once"
[ -x "$test" ] || { echo "once_runs: $test not built" >&2; exit 2; }
passed=0
i=1
while [ "$i" -le "$runs" ]; do
    if "$test" --jobs 1 >/dev/null 2>"$build/once_run.log"; then
        passed=$((passed + 1))
    else
        echo "run $i failed:" >&2
        grep -v '^[IW]:' "$build/once_run.log" | head -20 >&2
    fi
    i=$((i + 1))
done
echo "once_runs: $passed of $runs runs printed each notification exactly once"
[ "$passed" -eq "$runs" ]
