#!/usr/bin/python3
"""hvn-index's HTTP API seen by a client that knows only the API.

    check_api.py PORT TRUTH.json

TRUTH.json: {uuid: node as reported}. Uses urllib, a raw socket and
prometheus_client's text parser; exits 0 when every check passed, else
prints the failures and exits 1.
"""
import json
import socket
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

PORT = int(sys.argv[1])
TRUTH = json.load(open(sys.argv[2]))
BASE = "http://127.0.0.1:%d" % PORT
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def get(path, method="GET"):
    """Returns (status, headers, body bytes)."""
    req = urllib.request.Request(BASE + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(path):
    status, _, body = get(path)
    return status, json.loads(body)


def raw(request_bytes):
    """Sends raw bytes; returns the status line (or '' when the peer closed)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    try:
        s.sendall(request_bytes)
        data = s.recv(4096)
    except OSError:
        data = b""
    finally:
        s.close()
    return data.split(b"\r\n", 1)[0].decode("latin-1")


# The rows equal what was reported
status, body = get_json("/v1/compute_nodes")
check(status == 200, "list: status %d" % status)
rows = {n["uuid"]: n for n in body["compute_nodes"]}
check(set(rows) == set(TRUTH), "list: uuids %s" % sorted(rows))
for uuid, node in TRUTH.items():
    for field, value in node.items():
        got = rows.get(uuid, {}).get(field)
        check(got == value, "list: %s %s = %r, reported %r" % (uuid, field, got, value))
    check("created_at" in rows.get(uuid, {}) and "updated_at" in rows.get(uuid, {}),
          "list: timestamps of %s" % uuid)

# Filters, operators, sort, limit and marker
by_vcpus = sorted(TRUTH.values(), key=lambda n: (-n["vcpus_used"], n["uuid"]))
status, body = get_json("/v1/compute_nodes?sort=-vcpus_used")
check([n["uuid"] for n in body["compute_nodes"]] == [n["uuid"] for n in by_vcpus],
      "sort=-vcpus_used order")
paged, marker = [], None
for _ in range(10):
    path = "/v1/compute_nodes?sort=-vcpus_used&limit=1" + ("&marker=" + marker if marker else "")
    status, body = get_json(path)
    if not body["compute_nodes"]:
        break
    marker = body["compute_nodes"][0]["uuid"]
    paged.append(marker)
check(paged == [n["uuid"] for n in by_vcpus], "paging with limit=1 and marker: %s" % paged)
threshold = sorted(n["vcpus_used"] for n in TRUTH.values())[1]
for op, fn in (("gt", lambda v: v > threshold), ("ge", lambda v: v >= threshold),
               ("lt", lambda v: v < threshold), ("le", lambda v: v <= threshold),
               ("ne", lambda v: v != threshold), ("", lambda v: v == threshold)):
    key = "vcpus_used" + ("__" + op if op else "")
    status, body = get_json("/v1/compute_nodes?%s=%d" % (key, threshold))
    want = sorted(u for u, n in TRUTH.items() if fn(n["vcpus_used"]))
    check(sorted(n["uuid"] for n in body["compute_nodes"]) == want, "filter %s" % key)
one = next(iter(TRUTH.values()))
status, body = get_json("/v1/compute_nodes?host=%s&hypervisor_type=QEMU" % one["host"])
check(len(body["compute_nodes"]) == sum(n["host"] == one["host"] for n in TRUTH.values()),
      "filter on two text fields")

# Refusals name what was wrong
for path, word in (("/v1/compute_nodes?bogus=1", "bogus"),
                   ("/v1/compute_nodes?vcpus__between=1", "between"),
                   ("/v1/compute_nodes?vcpus=abc", "vcpus"),
                   ("/v1/compute_nodes?sort=-nothing", "nothing"),
                   ("/v1/compute_nodes?limit=0", "limit"),
                   ("/v1/compute_nodes?limit=10001", "limit"),
                   ("/v1/compute_nodes?marker=not-a-uuid", "marker"),
                   ("/v1/events?colour=red", "colour"),
                   ("/v1/events?since=yesterday", "since")):
    status, body = get_json(path)
    check(status == 400 and word in body.get("error", ""), "%s: %d %s" % (path, status, body))

# SQL metacharacters are values, never SQL
for evil in ("x' OR '1'='1", "x'; DROP TABLE compute_nodes; --", "%", "_", "\\", "\"", "1 OR 1=1"):
    status, body = get_json("/v1/compute_nodes?host=" + urllib.request.quote(evil))
    check(status == 200 and body["compute_nodes"] == [], "host=%r matched rows" % evil)
status, body = get_json("/v1/compute_nodes?vcpus=" + urllib.request.quote("1 OR 1=1"))
check(status == 400, "vcpus='1 OR 1=1' status %d" % status)
status, body = get_json("/v1/compute_nodes")
check(len(body["compute_nodes"]) == len(TRUTH), "the table is still whole")

# One node, events
uuid = next(iter(TRUTH))
status, body = get_json("/v1/compute_nodes/" + uuid)
check(status == 200 and body["compute_node"]["uuid"] == uuid, "one node")
status, body = get_json("/v1/compute_nodes/00000000-0000-4000-8000-000000000000")
check(status == 404, "unknown node: %d" % status)
status, body = get_json("/v1/compute_nodes/xyz")
check(status == 400, "bad uuid: %d" % status)
status, body = get_json("/v1/events?event_type=compute_node.create&since=2000-01-01")
creates = body["events"]
check(sorted(e["uuid"] for e in creates) == sorted(TRUTH), "create events")
check(all(len(e["message_id"]) == 36 and e["source"] == "notification" for e in creates),
      "events have message ids")
check([e["id"] for e in creates] == sorted(e["id"] for e in creates), "events oldest first")
status, body = get_json("/v1/events?limit=1")
check(len(body["events"]) == 1, "events limit")

# /metrics, read by Prometheus's own parser
status, headers, text = get("/metrics")
check(status == 200, "metrics status")
check(headers["Content-Type"].startswith("text/plain; version=0.0.4"), "metrics content type")
families = {f.name: f for f in text_string_to_metric_families(text.decode())}
vcpus = {s.labels["uuid"]: s.value for s in families["hvnotify_compute_node_vcpus_used"].samples}
check(vcpus == {u: n["vcpus_used"] for u, n in TRUTH.items()}, "vcpus_used gauges %s" % vcpus)
check(all(set(s.labels) == {"uuid", "host", "hypervisor_hostname"}
          for s in families["hvnotify_compute_node_running_vms"].samples), "node labels")
check(families["hvnotify_index_nodes"].samples[0].value == len(TRUTH), "nodes gauge")
check(families["hvnotify_index_notifications_applied"].type == "counter", "a counter")
check(families["hvnotify_index_notifications_applied"].samples[0].value >= len(TRUTH),
      "notifications counted")
check(families["hvnotify_index_commit_duration_seconds"].type == "histogram", "a histogram")
helps = [l for l in text.decode().splitlines() if l.startswith("# HELP ")]
check(len(helps) == len(set(helps)), "HELP once per family")

# Hostile requests: refused, and the server stays up
status, _, _ = get("/healthz", method="POST")
check(status == 405, "POST: %d" % status)
status, _, _ = get("/v1/compute_nodes?" + "&".join("a%d=1" % i for i in range(300)))
check(status == 400, "300 arguments: %d" % status)
line = raw(b"GET /v1/compute_nodes?host=" + b"x" * 200000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
check(line == "" or line.split()[1] in ("400", "414", "431"), "huge request line: %r" % line)
line = raw(b"GARBAGE GARBAGE GARBAGE\r\n\r\n")
check(line.split()[1] == "400", "garbage: %r" % line)
line = raw(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")
check(line.split()[1] == "400", "bad header: %r" % line)
line = raw(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: " + b"y" * 100000 + b"\r\n\r\n")
check(line.split()[1] == "431", "huge header: %r" % line)
line = raw(b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
check(line.split()[1] == "413", "a body: %r" % line)
status, body = get_json("/healthz")
check(status == 200 and body["status"] == "ok", "healthz after all that: %d %s" % (status, body))

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
