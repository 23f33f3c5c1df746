#!/usr/bin/env bash
# The main job on a local default: installs what is missing, builds, then runs
# a broker on loopback, this host's publisher and the fleet index (hvn-index,
# SQLite in a temp dir, HTTP on 127.0.0.1:8780), prints the index's answer to
# one query, then a subscriber prints every notification as one JSON line.
# Ctrl-C stops them all.
#   HVN_DEMO_SECONDS=N   stop by itself after N seconds
#   HVN_DEMO_INTERVAL=S  how often the host is measured (default 5)
#   HVN_DEMO_HTTP=A:P    where hvn-index listens (default 127.0.0.1:8780)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build -DHVN_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
bin=build/bin
interval=${HVN_DEMO_INTERVAL:-5}
state=$(mktemp -d /tmp/hvn-demo-XXXXXX)
pids=()

cleanup() {
  trap - EXIT INT TERM
  # Publisher first (it flushes), then subscriber and broker
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

"$bin/hvn-broker" --heartbeat-ms 5000 &
pids+=($!)

http=${HVN_DEMO_HTTP:-127.0.0.1:8780}
if [ -x "$bin/hvn-index" ]; then
  "$bin/hvn-index" --db "$state/fleet.db" --http "$http" &
  pids+=($!)
fi

if [ -x "$bin/hvn-agent" ]; then
  echo "demo: hvn-agent reports this host every ${interval}s (state in $state)" >&2
  "$bin/hvn-agent" --connect tcp://127.0.0.1:5561 --state-dir "$state" \
                   --interval "$interval" &
  pids+=($!)
else
  # A scripted feed of this host's memory through hvn-pub
  echo "demo: hvn-pub feeds this host's memory every ${interval}s" >&2
  host=$(hostname -s)
  # One line with every payload field (hvn-pub writes it from the schema
  # table); the loop sets what it measures
  node=$("$bin/hvn-pub" --example --host "$host")
  (
    vms=0
    while true; do
      total=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
      avail=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
      vms=$(( (vms + 1) % 4 ))
      jq -c --argjson cpus "$(nproc)" --argjson total "$total" --argjson avail "$avail" \
            --argjson vms "$vms" --arg fqdn "$(hostname -f 2>/dev/null || hostname)" \
        '.id = 1 | .vcpus = $cpus | .memory_mb = $total | .vcpus_used = $vms
         | .memory_mb_used = $total - $avail | .free_ram_mb = $avail | .running_vms = $vms
         | .hypervisor_type = "host" | .hypervisor_hostname = $fqdn
         | .free_disk_gb = null | .disk_available_least = null | .host_ip = null' <<<"$node"
      sleep "$interval"
    done
  ) | "$bin/hvn-pub" --connect tcp://127.0.0.1:5561 --host "$host" &
  pids+=($!)
fi

# One query to the index, once this host's node is in it
if [ -x "$bin/hvn-index" ]; then
  query="http://$http/v1/compute_nodes?sort=-free_ram_mb&limit=5"
  answer=
  for _ in $(seq 1 100); do
    answer=$(curl -sf "$query" || true)
    [ -n "$answer" ] && [ "$(jq '.compute_nodes | length' <<<"$answer")" -gt 0 ] && break
    sleep 0.2
  done
  [ -n "$answer" ] || answer='{"compute_nodes": []}'
  echo "demo: hvn-index answers $query (SQL: sqlite3 $state/fleet.db)" >&2
  jq -c '.compute_nodes[] | {host, hypervisor_hostname, free_ram_mb, vcpus_used, running_vms, updated_at}' \
    <<<"$answer"
fi

sub_args=(--connect tcp://127.0.0.1:5562)
if "$bin/hvn-sub" --help | grep -q -- --snapshot; then
  sub_args+=(--service tcp://127.0.0.1:5563 --snapshot)
fi
"$bin/hvn-sub" "${sub_args[@]}" &
pids+=($!)

if [ -n "${HVN_DEMO_SECONDS:-}" ]; then
  sleep "$HVN_DEMO_SECONDS"
else
  wait -n
fi
