#!/usr/bin/env bash
# check_agent.sh BIN_DIR — hvn-agent end to end, against a real hvn-broker on
# free loopback ports, watched by hvn-sub:
#   --once publishes a create whose vcpus is this machine's online CPU count
#     and whose memory_mb is MemTotal in MiB;
#   --once again with the same state directory sends no second create;
#   --libvirt-uri test:///default (when built with libvirt) sends an update
#     whose running_vms and hypervisor_type come from libvirt;
#   --decommission sends a delete carrying the same uuid and removes the
#     node's uuid file;
#   with no broker, --once exits 1 with one line naming the endpoint;
#   bad usage exits 2 naming the option; SIGTERM stops the daemon with 0.
set -euo pipefail

bin=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/hvn-agent-check-XXXXXX)
pids=()
# Stops pid with SIGTERM; SIGKILL when it is still there after 10 s.
# Returns 1 when it had to be killed.
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  if ! timeout 10 tail --pid="$1" -f /dev/null; then
    kill -KILL "$1" 2>/dev/null || true
    return 1
  fi
}
# A broker or hvn-sub that does not stop on SIGTERM fails the check.
cleanup() {
  local code=$? stuck=0
  for pid in "${pids[@]}"; do
    stop "$pid" || { echo "check_agent: pid $pid did not stop within 10 s of SIGTERM" >&2; stuck=1; }
  done
  rm -rf "$work"
  [ $stuck -eq 0 ] || exit 1
  exit $code
}
trap cleanup EXIT
trap "exit 143" TERM INT
fail() { echo "check_agent: $*" >&2; for f in "$work"/*.log; do echo "== $f" >&2; cat "$f" >&2; done; exit 1; }
step() { echo "check_agent: $*"; }

read -r fe be sv <<<"$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
"$bin/hvn-broker" --frontend "tcp://127.0.0.1:$fe" --backend "tcp://127.0.0.1:$be" \
    --service "tcp://127.0.0.1:$sv" 2>"$work/broker.log" &
pids+=($!)
"$bin/hvn-sub" --connect "tcp://127.0.0.1:$be" --topic compute_node. >"$work/sub.out" 2>"$work/sub.log" &
pids+=($!)

# Prints the broker's STATS counter $1 (asked on the service socket), or
# nothing when the broker does not answer within a second.
stat() {
  /usr/bin/python3 - "tcp://127.0.0.1:$sv" "$1" <<'PY'
import sys, zmq, msgpack
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
s.send(b"STATS")
if s.poll(1000):
    frames = s.recv_multipart()
    stats = msgpack.unpackb(frames[1], raw=False)
    print(stats.get(sys.argv[2], ""))
PY
}
# Waits until the broker counts $1 subscriptions or more; 1 after 30 s.
wait_subscriptions() {
  for _ in $(seq 300); do
    n=$(stat subscriptions)
    [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
wait_subscriptions 1 || fail "hvn-sub's subscription never reached the broker"

agent() { timeout 30 "$bin/hvn-agent" --connect "tcp://127.0.0.1:$fe" --state-dir "$work/state" "$@"; }
# Waits until hvn-sub has printed $1 lines. Returns 1 after 10 s.
wait_lines() {
  for _ in $(seq 100); do
    [ "$(wc -l <"$work/sub.out")" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
field() { sed -n "${1}p" "$work/sub.out" | jq -r "$2"; }

step "--once publishes this host's create"
agent --once 2>>"$work/agent.log" || fail "--once failed"
wait_lines 1 || fail "no notification after --once"
[ "$(field 1 .event_type)" = compute_node.create ] || fail "first notification is not a create"
uuid=$(field 1 '.payload."nova_object.data".uuid')
vcpus=$(field 1 '.payload."nova_object.data".vcpus')
memory_mb=$(field 1 '.payload."nova_object.data".memory_mb')
[ "$vcpus" = "$(getconf _NPROCESSORS_ONLN)" ] || fail "vcpus $vcpus, this machine has $(getconf _NPROCESSORS_ONLN)"
[ "$memory_mb" = "$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)" ] || fail "memory_mb $memory_mb is not MemTotal in MiB"
[ "$(cat "$work/state/node-uuid")" = "$uuid" ] || fail "state/node-uuid does not hold $uuid"

step "--once again with the same state directory: no second create"
agent --once 2>>"$work/agent.log" || fail "second --once failed"
lines=1
if agent --once --libvirt-uri test:///default 2>"$work/libvirt.log"; then
  step "--libvirt-uri test:///default: running_vms and hypervisor_type from libvirt"
  wait_lines 2 || fail "no update after the libvirt run"
  [ "$(field 2 .event_type)" = compute_node.update ] || fail "the libvirt run did not send an update"
  [ "$(field 2 '.payload."nova_object.data".running_vms')" = 1 ] || fail "running_vms is not test:///default's 1"
  [ "$(field 2 '.payload."nova_object.data".hypervisor_type')" = TEST ] || fail "hypervisor_type is not TEST"
  [ "$(field 2 '.payload."nova_object.data".uuid')" = "$uuid" ] || fail "the update changed the uuid"
  lines=2
else
  [ $? -eq 2 ] && grep -q "without libvirt" "$work/libvirt.log" || fail "the libvirt run failed"
  step "built without libvirt: --libvirt-uri refused with exit 2"
fi

step "--decommission sends the delete of the same uuid"
agent --decommission 2>>"$work/agent.log" || fail "--decommission failed"
wait_lines $((lines + 1)) || fail "no delete after --decommission"
[ "$(field $((lines + 1)) .event_type)" = compute_node.delete ] || fail "no delete after --decommission"
[ "$(field $((lines + 1)) '.payload."nova_object.data".uuid')" = "$uuid" ] || fail "the delete carries another uuid"
[ ! -e "$work/state/node-uuid" ] || fail "--decommission left state/node-uuid"
# The broker forwards in arrival order and each run flushed before it
# exited: a second create would be printed before the delete
[ "$(grep -c compute_node.create "$work/sub.out")" = 1 ] || fail "more than one create was sent"

step "no broker: --once exits 1 naming the endpoint"
dead=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
set +e
timeout 30 "$bin/hvn-agent" --connect "tcp://127.0.0.1:$dead" --state-dir "$work/state2" --once 2>"$work/dead.log"
code=$?
set -e
[ $code -eq 1 ] || fail "--once without a broker exited $code"
grep -q "tcp://127.0.0.1:$dead" "$work/dead.log" || fail "the error does not name the endpoint"

step "bad usage exits 2 naming the option"
for args in "--interval 0" "--bogus" "--heartbeat-ms x" "--host a@b"; do
  set +e
  # shellcheck disable=SC2086
  "$bin/hvn-agent" --connect tcp://127.0.0.1:1 $args 2>"$work/usage.log"
  code=$?
  set -e
  opt=${args%% *}
  [ $code -eq 2 ] || fail "'$args' exited $code"
  [ "$(wc -l <"$work/usage.log")" -eq 1 ] && grep -q -- "$opt" "$work/usage.log" || fail "'$args': no one-line error naming $opt"
done

step "SIGTERM stops the daemon with 0"
"$bin/hvn-agent" --connect "tcp://127.0.0.1:$fe" --state-dir "$work/state3" --interval 1 2>"$work/daemon.log" &
daemon=$!
# Running means its node reached the broker's cache (emptied by the
# decommission above)
for _ in $(seq 300); do
  [ "$(stat cache_nodes)" = 1 ] && break
  sleep 0.1
done
[ "$(stat cache_nodes)" = 1 ] || fail "the daemon's node never reached the broker"
kill -TERM $daemon
set +e
timeout 15 tail --pid=$daemon -f /dev/null
stopped=$?
[ $stopped -eq 0 ] || kill -KILL $daemon
wait $daemon
code=$?
set -e
[ $stopped -eq 0 ] || fail "the daemon did not stop within 15 s of SIGTERM"
[ $code -eq 0 ] || fail "the daemon exited $code after SIGTERM"
step "ok"
