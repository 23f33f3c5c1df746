#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang in build-fuzz/ and
# runs each on its seed corpus for a bounded time. A crash, leak, timeout or
# undefined behaviour fails the run; the input that caused it is left in
# build-fuzz/findings/.
#   scripts/fuzz.sh              every target, 25 s each
#   scripts/fuzz.sh -t 600       every target, 600 s each
#   scripts/fuzz.sh -t 600 end   only the named targets
# New inputs a run finds go to build-fuzz/corpus/<target>/, never into the
# source tree (docs/security.md, "Fuzzing", says how a finding becomes a test).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=25
if [ "${1:-}" = "-t" ]; then
  seconds=${2:?usage: scripts/fuzz.sh [-t SECONDS] [TARGET]...}
  shift 2
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decoder json_node end)

scripts/deps.sh --test
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found, fuzz targets not built" >&2
  exit 1
fi

dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DHVN_FUZZ=ON -DHVN_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j "$(nproc)" --target fuzz

mkdir -p "$dir/findings"
failed=()
for t in "${targets[@]}"; do
  [ -d "tests/fuzz/$t" ] || { echo "fuzz: no target '$t'" >&2; exit 2; }
  mkdir -p "$dir/corpus/$t"
  log="$dir/fuzz_$t.log"
  echo "fuzz: $t for ${seconds}s (log $log)" >&2
  # The first corpus directory takes new inputs; the seeds are only read.
  if "$dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -dict="tests/fuzz/$t.dict" \
      -artifact_prefix="$dir/findings/$t-" "$dir/corpus/$t" "tests/fuzz/$t" >"$log" 2>&1; then
    grep -E 'DONE|^Done' "$log" >&2 || true
  else
    failed+=("$t")
    tail -n 40 "$log" >&2
    echo "fuzz: $t FAILED; input in $dir/findings/" >&2
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: findings in: ${failed[*]}" >&2; exit 1; }
