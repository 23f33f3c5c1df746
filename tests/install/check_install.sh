#!/usr/bin/env bash
# check_install.sh BUILD_DIR SOURCE_DIR [SANITIZE]
#
# The installed tree, checked the way a user meets it: `cmake --install` into
# a temporary prefix; the pkg-config file, headers, libraries and both
# systemd units are there; examples/embed.c builds against the prefix with
# pkg-config (shared and static) and with find_package(hvnotify), and runs.
# When the prefix holds hvn-broker and hvn-sub, the example runs against a
# broker on free loopback ports and hvn-sub must see its create, update and
# delete; the installed hvn-agent --once must reach that broker too.
# SANITIZE=ON adds -fsanitize=address,undefined to every compile, as the
# installed library was built with it.
set -euo pipefail

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
sanitize=${3:-OFF}

prefix=$(mktemp -d /tmp/hvn-install-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$prefix"
}
trap cleanup EXIT

fail() { echo "check_install: $*" >&2; exit 1; }
step() { echo "check_install: $*"; }

step "installing into $prefix"
cmake --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 || { cat "$prefix.log"; rm -f "$prefix.log"; fail "cmake --install failed"; }
rm -f "$prefix.log"

pc=$(find "$prefix" -name hvnotify.pc -path '*/pkgconfig/*' | head -1)
[ -n "$pc" ] || fail "no hvnotify.pc under $prefix"
libdir=$(dirname "$(dirname "$pc")")
for unit in hvn-broker hvn-agent; do
  f="$prefix/lib/systemd/system/$unit.service"
  [ -f "$f" ] || fail "no $f"
  grep -q "^ExecStart=$prefix/bin/$unit " "$f" || fail "$f does not start $prefix/bin/$unit"
done
grep -q '^net.core.somaxconn = ' "$prefix/lib/sysctl.d/60-hvn-broker.conf" 2>/dev/null ||
  fail "no lib/sysctl.d/60-hvn-broker.conf setting net.core.somaxconn"
for h in hvn_proto.h hvn_schema.h hvn_codec.h hvn_publisher.h hvn_subscriber.h; do
  [ -f "$prefix/include/hvnotify/$h" ] || fail "no include/hvnotify/$h"
done
# proto/'s internal headers (hvni_, not exported) stay out of the tree; the
# installed headers include only installed headers
for h in hvn_mpread.h hvn_wire_int.h hvn_write_int.h; do
  [ ! -e "$prefix/include/hvnotify/$h" ] || fail "internal header include/hvnotify/$h installed"
done
for f in "$prefix"/include/hvnotify/*.h; do
  if grep -q 'hvni_' "$f"; then fail "$(basename "$f") is installed but names hvni_ internals"; fi
  for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
    [ -f "$prefix/include/hvnotify/$inc" ] || fail "$(basename "$f") includes $inc, which is not installed"
  done
done
ls "$libdir"/libhvn.so.* >/dev/null 2>&1 || fail "no libhvn.so.* in $libdir"
[ -f "$libdir/cmake/hvnotify/hvnotifyConfig.cmake" ] || fail "no CMake package config"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
export LD_LIBRARY_PATH="$libdir"
[ "$(pkg-config --variable=libdir hvnotify)" -ef "$libdir" ] || fail "hvnotify.pc's libdir is not $libdir"

cflags=(-Wall -Wextra -Werror)
if [ "$sanitize" = "ON" ]; then
  cflags+=(-fsanitize=address,undefined -fno-omit-frame-pointer)
  export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
fi

step "building examples/embed.c with pkg-config"
# shellcheck disable=SC2046  # word splitting of pkg-config's output is the point
cc "${cflags[@]}" "$src/examples/embed.c" $(pkg-config --cflags --libs hvnotify) -o "$prefix/embed"

if [ -f "$libdir/libhvn.a" ]; then
  step "building examples/embed.c against libhvn.a"
  # libhvn.a itself, its dependencies shared (`pkg-config --static` would
  # want static archives of every dependency of libczmq too)
  deps="libczmq libzmq $(pkg-config --print-requires-private hvnotify | tr '\n' ' ')"
  # shellcheck disable=SC2046,SC2086
  cc "${cflags[@]}" "$src/examples/embed.c" $(pkg-config --cflags hvnotify) "$libdir/libhvn.a" \
     $(pkg-config --libs $deps) -lpthread -o "$prefix/embed-static"
  ! ldd "$prefix/embed-static" | grep -q libhvn || fail "embed-static still needs libhvn.so"
fi

step "building examples/embed.c with find_package(hvnotify)"
cmake -S "$src/tests/install/consumer" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DHVN_EXAMPLE="$src/examples/embed.c" -DCMAKE_C_FLAGS="${cflags[*]}" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
[ -x "$prefix/consumer/embed" ] || fail "the find_package build made no program"

step "running embed without a broker: exits 0, quickly"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout 20 "$prefix/embed" --connect "tcp://127.0.0.1:$port" --rounds 3 || fail "embed without a broker failed"
timeout 20 "$prefix/consumer/embed" --connect "tcp://127.0.0.1:$port" --rounds 1 || fail "the find_package embed failed"

if [ -x "$prefix/bin/hvn-broker" ] && [ -x "$prefix/bin/hvn-sub" ]; then
  step "running embed against the installed hvn-broker"
  ports=$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  read -r fe be sv <<<"$ports"
  "$prefix/bin/hvn-broker" --frontend "tcp://127.0.0.1:$fe" --backend "tcp://127.0.0.1:$be" \
      --service "tcp://127.0.0.1:$sv" 2>"$prefix/broker.log" &
  pids+=($!)
  timeout 30 "$prefix/bin/hvn-sub" --connect "tcp://127.0.0.1:$be" --topic compute_node. \
      --count 4 --timeout 20 >"$prefix/sub.out" 2>"$prefix/sub.log" &
  sub=$!
  # hvn-sub's subscription must reach the broker before embed publishes:
  # wait until the broker's STATS counts it
  /usr/bin/python3 - "tcp://127.0.0.1:$sv" <<'PY' || fail "hvn-sub's subscription never reached the broker"
import sys, time, zmq, msgpack
sock = zmq.Context().socket(zmq.DEALER)
sock.connect(sys.argv[1])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    sock.send(b"STATS")
    if sock.poll(1000):
        word, body = sock.recv_multipart()[:2]
        if word == b"STATS" and msgpack.unpackb(body).get("subscriptions", 0) >= 1:
            sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
  bin=embed
  [ -x "$prefix/embed-static" ] && bin=embed-static
  timeout 20 "$prefix/$bin" --connect "tcp://127.0.0.1:$fe" --rounds 3 --require-broker \
      || fail "embed did not flush to the broker"
  wait "$sub" || { cat "$prefix/sub.log" "$prefix/broker.log" >&2; fail "hvn-sub did not see 4 notifications"; }
  for ev in create update delete; do
    grep -q "\"compute_node.$ev\"" "$prefix/sub.out" || fail "hvn-sub saw no compute_node.$ev"
  done
  if [ -x "$prefix/bin/hvn-agent" ]; then
    step "running the installed hvn-agent --once against the broker"
    timeout 30 "$prefix/bin/hvn-agent" --connect "tcp://127.0.0.1:$fe" --once \
        --state-dir "$prefix/agent-state" 2>"$prefix/agent.log" \
        || { cat "$prefix/agent.log" >&2; fail "hvn-agent --once failed"; }
  fi
else
  step "no hvn-broker/hvn-sub installed: skipped the run against a broker"
fi
step "ok"
