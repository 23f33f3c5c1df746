#!/usr/bin/python3
"""Checks hvn-broker's /metrics against its STATS, with a real Prometheus text parser.

Sends one malformed message (two frames) to the frontend as a publisher written from
PROTOCOL.md would, then reads STATS on the service socket (pyzmq + msgpack) and
/metrics over HTTP until the exposition has caught up (it is refreshed every second),
and checks that every STATS counter is there with its value: unsigned rows as
hvnotify_broker_<name>_total counters or gauges, refused.<reason> as
hvnotify_broker_refused_total{reason=...}, the text rows as hvnotify_broker_info labels.
Prints one line per check; exits 0 when all passed, 1 otherwise.
usage: hvn_broker_metrics_check.py FRONTEND SERVICE PORT
"""
import sys
import time
import urllib.request

import msgpack
import zmq
from prometheus_client.parser import text_string_to_metric_families

frontend, service, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = zmq.Context.instance()
GAUGES = {"cache_nodes", "cache_bytes", "subscriptions", "publishers", "ring_entries",
          "ring_bytes", "ring_max_bytes", "ring_publishers", "curve"}


def fail(why):
    print("FAIL", why, flush=True)
    sys.exit(1)


def stats():
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(service)
    dealer.send(b"STATS")
    word, body = dealer.recv_multipart()
    dealer.close()
    if word != b"STATS":
        fail("STATS answered %r" % word)
    return msgpack.unpackb(body, raw=False)


def metrics():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as reply:
        if not reply.headers["Content-Type"].startswith("text/plain; version=0.0.4"):
            fail("content type %s" % reply.headers["Content-Type"])
        text = reply.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {}
    types = {}
    for family in families:
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
            types[sample.name] = family.type
    return samples, types


pub = context.socket(zmq.XPUB)
pub.setsockopt(zmq.RCVTIMEO, 5000)
pub.connect(frontend)
pub.recv()  # the broker's subscription
pub.send_multipart([b"compute_node.update@cmp-601", b"\x01"])

deadline = time.monotonic() + 15
while True:
    table = stats()
    samples, types = metrics()
    caught_up = (table.get("refused.frames", 0) >= 1 and
                 samples.get(("hvnotify_broker_received_total", ())) == table["received"])
    if caught_up or time.monotonic() > deadline:
        break
    time.sleep(0.1)
if not caught_up:
    fail("/metrics never showed the refused message")
print("caught up: received", table["received"], flush=True)

checked = 0
for name, value in table.items():
    if isinstance(value, str):
        continue
    if name == "refused":
        total = sum(v for (n, labels), v in samples.items() if n == "hvnotify_broker_refused_total")
        if total != value:
            fail("refused %d, the reasons sum to %d" % (value, total))
    elif name.startswith("refused."):
        key = ("hvnotify_broker_refused_total", (("reason", name[len("refused."):]),))
        if samples.get(key) != value:
            fail("%s is %r in STATS, %r in /metrics" % (name, value, samples.get(key)))
        if types[key[0]] != "counter":
            fail("refused_total is a %s" % types[key[0]])
    elif name == "uptime_ms":
        if ("hvnotify_broker_uptime_seconds", ()) not in samples:
            fail("no uptime")
    else:
        metric = "hvnotify_broker_" + name + ("" if name in GAUGES else "_total")
        if (metric, ()) not in samples:
            fail("STATS %s has no metric %s" % (name, metric))
        if samples[(metric, ())] != value:
            fail("%s is %r in STATS, %r in /metrics" % (name, value, samples[(metric, ())]))
        want = "gauge" if name in GAUGES else "counter"
        if types[metric] != want:
            fail("%s is a %s, not a %s" % (metric, types[metric], want))
    checked += 1
info = [labels for (n, labels), v in samples.items() if n == "hvnotify_broker_info"]
if len(info) != 1 or dict(info[0]).get("broker_id") != table["broker_id"]:
    fail("info %r" % info)
print("every one of", checked, "STATS counters is in /metrics with its value", flush=True)
