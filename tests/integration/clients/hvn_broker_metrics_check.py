#!/usr/bin/python3
"""Checks hvn-broker's /metrics against its STATS, with a real Prometheus text parser.

Sends one malformed message (two frames) to the frontend as a publisher written from
PROTOCOL.md would, asks one SNAPSHOT and one REPLAY, then reads STATS on the service
socket (pyzmq + msgpack) and /metrics over HTTP until the exposition has caught up (it is
refreshed every second), and checks that every STATS counter is there with its value:
unsigned rows as hvnotify_broker_<name>_total counters or gauges, refused.<reason> as
hvnotify_broker_refused_total{reason=...}, the durations <stem>_us as histograms
hvnotify_broker_<stem>_seconds (_sum in seconds, _count the answers timed) and
<stem>_last_us as gauges hvnotify_broker_<stem>_last_seconds, the text rows as
hvnotify_broker_info labels.
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
          "ring_bytes", "ring_max_bytes", "ring_publishers", "curve", "snapshots_active",
          "snapshot_bytes", "snapshot_max_bytes", "subscriber_queue"}
DURATIONS = {"snapshot_us": "snapshots", "replay_us": "replays"}  # total: what it timed


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


def ask(*request):
    """Sends a service request; returns the frames of its reply up to END (or ERROR)."""
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(service)
    dealer.send_multipart(list(request))
    replies = []
    while True:
        reply = dealer.recv_multipart()
        replies.append(reply)
        if reply[0] != b"ITEM":
            break
    dealer.close()
    return replies


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
# One snapshot and one replay answered in full, so that their durations are timed
if ask(b"SNAPSHOT", b"")[-1][0] != b"END":
    fail("SNAPSHOT was not answered with END")
if ask(b"REPLAY", b"7b1c1e0a-4a7b-4b8e-9d7e-0a6f7c2b0000", b"1", b"3")[-1][0] != b"END":
    fail("REPLAY was not answered with END")

deadline = time.monotonic() + 15
while True:
    table = stats()
    samples, types = metrics()
    caught_up = (table.get("refused.frames", 0) >= 1 and
                 samples.get(("hvnotify_broker_received_total", ())) == table["received"] and
                 samples.get(("hvnotify_broker_snapshots_total", ())) == table["snapshots"] and
                 samples.get(("hvnotify_broker_replays_total", ())) == table["replays"])
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
    elif name in DURATIONS:
        metric = "hvnotify_broker_" + name[:-len("_us")] + "_seconds"
        timed = table[DURATIONS[name]]
        if timed < 1:
            fail("STATS %s is %d: nothing was timed" % (DURATIONS[name], timed))
        if name == "snapshot_us" and value <= 0:
            fail("a snapshot took no time: %s is %d" % (name, value))
        got = (samples.get((metric + "_sum", ())), samples.get((metric + "_count", ())),
               samples.get((metric + "_bucket", (("le", "+Inf"),))))
        if got != (value / 1e6, timed, timed):
            fail("%s %d, %s %d: /metrics has sum, count, +Inf bucket %r" %
                 (name, value, DURATIONS[name], timed, got))
        if types[metric + "_sum"] != "histogram":
            fail("%s is a %s, not a histogram" % (metric, types[metric + "_sum"]))
    elif name.endswith("_last_us"):
        metric = "hvnotify_broker_" + name[:-len("_last_us")] + "_last_seconds"
        if samples.get((metric, ())) != value / 1e6:
            fail("%s is %r in STATS, %s %r in /metrics" % (name, value, metric,
                                                           samples.get((metric, ()))))
        if types[metric] != "gauge":
            fail("%s is a %s, not a gauge" % (metric, types[metric]))
        if value > table[name.replace("_last_us", "_us")]:
            fail("%s %d is more than the total" % (name, value))
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
