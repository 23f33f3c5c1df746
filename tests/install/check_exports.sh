#!/usr/bin/env bash
# libhvn.so exports exactly the functions and data its public headers
# declare: nothing internal leaks, nothing public is missing.
#   check_exports.sh LIBHVN_SO HEADER...
set -euo pipefail
lib=$1
shift
# (symbols of the toolchain's own, such as AddressSanitizer's __odr_asan.*,
# begin with "__" and are not the project's)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRB]$/ && $3 !~ /^__/ {print $3}' | sort -u)
# Declarations: a name followed by '(' at the start of a declaration, or an
# extern object; static inline helpers in headers are not symbols.
functions=$(cat "$@" | grep -v '^[[:space:]]*static' |
            grep -oE '(^|[[:space:]*])hvn_[a-z0-9_]+[[:space:]]*\(' |
            grep -oE 'hvn_[a-z0-9_]+' | grep -v '_t$' || true)
objects=$(cat "$@" | grep -E '^extern ' | grep -oE '(hvn|HVN)_[A-Za-z0-9_]+[[:space:]]*(\[[^]]*\])?[[:space:]]*;' |
          grep -oE '^(hvn|HVN)_[A-Za-z0-9_]+' || true)
declared=$(printf '%s\n%s\n' "$functions" "$objects" | grep . | sort -u)
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
status=0
if [ -n "$extra" ]; then
  echo "exported by $lib but in no public header:"; echo "$extra" | sed 's/^/  /'; status=1
fi
if [ -n "$missing" ]; then
  echo "declared in a public header but not exported:"; echo "$missing" | sed 's/^/  /'; status=1
fi
[ $status -eq 0 ] && echo "libhvn exports $(echo "$exported" | wc -l) symbols, all of them public API"
exit $status
