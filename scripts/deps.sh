#!/usr/bin/env bash
# Installs the Debian 12 packages hvnotify needs, skipping what is already
# there. Uses sudo when not run as root.
#   scripts/deps.sh           what building and running the programs needs
#                             (the README's first command)
#   scripts/deps.sh --test    that, plus what only the tests, fuzzing and
#                             benchmarks need: the real servers and the
#                             third-party clients they check against
set -euo pipefail

# Building and running: the libraries of every program and their tools.
run_packages=(
  build-essential cmake pkg-config git help2man
  libzmq3-dev libczmq-dev libmsgpack-dev uuid-dev libjansson-dev libvirt-dev
  libsqlite3-dev libpq-dev libmicrohttpd-dev librabbitmq-dev
  sqlite3 curl jq
)
# Only for the tests: the test framework, the fuzzer's compiler, the real
# servers (PostgreSQL, RabbitMQ), a browser, and third-party clients.
test_packages=(
  libcriterion-dev clang libclang-rt-14-dev
  python3 python3-zmq python3-msgpack python3-prometheus-client
  python3-psycopg2 python3-oslo.messaging
  postgresql rabbitmq-server chromium chromium-driver
)

packages=("${run_packages[@]}")
case "${1:-}" in
  "") ;;
  --test) packages+=("${test_packages[@]}") ;;
  *) echo "usage: scripts/deps.sh [--test]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian's server packages start their service on install where they can;
# the project starts its own throwaway instances, so keep them from starting.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
fi
rc=0
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
[ -z "$policy" ] || $sudo rm -f "$policy"
exit $rc
