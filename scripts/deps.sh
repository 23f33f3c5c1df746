#!/usr/bin/env bash
# Installs the Debian 12 packages hvnotify needs to build, test and run,
# skipping what is already there. Uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libzmq3-dev libczmq-dev libmsgpack-dev uuid-dev libjansson-dev
  libcriterion-dev libvirt-dev
  clang libclang-rt-14-dev
  python3 python3-zmq python3-msgpack jq
)

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
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
