#!/usr/bin/python3
"""hostile_peer.py — a well-formed but hostile ZeroMQ peer of hvn-broker.

Driven by tests/integration/test_broker_hostile.c (Debian's pyzmq):

  subscribe ENDPOINT COUNT SIZE
      One SUB connection sends COUNT distinct subscriptions of SIZE bytes
      each, then watches its own socket for up to 15 s and prints
      "disconnected" when the broker cut it, else "connected".
"""
import sys
import time

import zmq
import zmq.utils.monitor


def subscribe(endpoint, count, size):
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RECONNECT_IVL, 60000)  # one connection, not a reconnect loop
    sub.setsockopt(zmq.SNDHWM, 0)  # every subscription goes out
    monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
    sub.connect(endpoint)
    for i in range(count):
        prefix = (b"%08d" % i) * (size // 8 + 1)
        sub.setsockopt(zmq.SUBSCRIBE, prefix[:size])
    state = "connected"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not monitor.poll(100):
            continue
        event = zmq.utils.monitor.recv_monitor_message(monitor)
        if event["event"] == zmq.EVENT_DISCONNECTED:
            state = "disconnected"
            break
    print(state, flush=True)
    sub.close(linger=0)
    monitor.close(linger=0)
    ctx.term()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "subscribe":
        subscribe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
