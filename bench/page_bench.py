#!/usr/bin/python3
"""page_bench.py — hvn-index's live page with a large fleet, in headless chromium.

    bench/page_bench.py [--bin build/bin] [--nodes 10000] [--rate 1000] [--seconds 20] [--runs 3]

Starts hvn-broker, hvn-index and hvn-pub on free loopback ports, reports
--nodes nodes, and measures in the same run:

  first paint: from the page's navigation to the frame after the whole fleet
      is drawn (totals, one heat-map cell per node, the table), against the
      baseline: the same GET /v1/compute_nodes?limit=10000 the page makes,
      fetched and parsed by Python (the floor the page cannot beat);
  keeping up: hvn-pub is fed --rate changes a second for --seconds; the page
      reports the rows it applied, the time it spent applying them, and the
      age of each row when applied (now minus its notification's
      timestamp). The ratio is rows applied / changes sent; the lag must
      stay under a second and the page must end equal to the database;
  memory: the page's JS heap before and after the changes.

Prints a table; the figures go in docs/benchmarks.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "index"))
from webdriver import Browser, free_port  # noqa: E402
import fleet_gen  # noqa: E402


def api_rows(port):
    """Returns (rows, seconds) of GET /v1/compute_nodes?limit=10000."""
    t = time.monotonic()
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/compute_nodes?limit=10000" % port) as r:
        rows = json.loads(r.read())["compute_nodes"]
    return rows, time.monotonic() - t


class Fleet:
    """hvn-broker, hvn-index and hvn-pub on loopback."""

    def __init__(self, bin_dir, nodes):
        self.dir = tempfile.mkdtemp(prefix="hvn-page-bench-")
        p = [free_port() for _ in range(4)]
        self.port = p[3]
        log = open(os.path.join(self.dir, "log"), "w")
        self.procs = []
        self.procs.append(subprocess.Popen(
            [bin_dir + "/hvn-broker", "--frontend", "tcp://127.0.0.1:%d" % p[0], "--backend",
             "tcp://127.0.0.1:%d" % p[1], "--service", "tcp://127.0.0.1:%d" % p[2], "--name",
             "bench"], stderr=log))
        time.sleep(0.5)  # The broker binds before it answers; hvn-index retries anyway
        self.procs.append(subprocess.Popen(
            [bin_dir + "/hvn-index", "--connect", "tcp://127.0.0.1:%d" % p[1], "--service",
             "tcp://127.0.0.1:%d" % p[2], "--db", self.dir + "/fleet.db", "--http",
             "127.0.0.1:%d" % self.port], stderr=log))
        self._wait(lambda: self._get("/healthz") == 200, 20, "hvn-index is not healthy")
        self.pub = subprocess.Popen(
            [bin_dir + "/hvn-pub", "--connect", "tcp://127.0.0.1:%d" % p[0], "--host", "bench"],
            stdin=subprocess.PIPE, stderr=log, text=True)
        self.procs.append(self.pub)
        import random
        self.rng = random.Random(7)
        self.nodes = [fleet_gen.node(self.rng, i) for i in range(nodes)]
        for n in self.nodes:
            self.pub.stdin.write(json.dumps(n) + "\n")
        self.pub.stdin.flush()
        self._wait(lambda: len(api_rows(self.port)[0]) == nodes, 120, "the fleet never arrived")

    def _get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path)) as r:
                return r.status
        except Exception:
            return None

    @staticmethod
    def _wait(cond, timeout, why):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(why)
            time.sleep(0.1)  # Polling the API: there is no handshake to wait on

    def changes(self, rate, seconds):
        """Returns the number of changes written to hvn-pub at rate a second."""
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                n = self.nodes[self.rng.randrange(len(self.nodes))]
                fleet_gen.change(self.rng, n)
                n["vcpus_used"] = (n["vcpus_used"] + 1) % (n["vcpus"] + 1)  # Always a change
                self.pub.stdin.write(json.dumps(n) + "\n")
                sent += 1
            self.pub.stdin.flush()
            time.sleep(0.005)
        return sent

    def close(self):
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class StreamReader(threading.Thread):
    """A bare client of GET /v1/stream (Python, no browser): the age of each
    row when it arrives, the baseline of the page's."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.lags = []
        self.rows = 0
        self.counting = False

    def run(self):
        import datetime
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/stream" % self.port) as r:
            event = None
            for line in r:
                line = line.decode()
                if line.startswith("event: "):
                    event = line[7:].strip()
                elif line.startswith("data: ") and event == "changes" and self.counting:
                    now = time.time()
                    for row in json.loads(line[6:])["rows"]:
                        t = datetime.datetime.strptime(row[-1][:26], "%Y-%m-%d %H:%M:%S.%f")
                        t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
                        self.lags.append((now - t) * 1000)
                        self.rows += 1


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run(args, fleet):
    """Returns one run's figures."""
    _, fetch_s = api_rows(fleet.port)
    with Browser() as b:
        b.get("http://127.0.0.1:%d/" % fleet.port)
        if not b.wait("return window.hvnPage && window.hvnPage.paintedMs", 60):
            raise RuntimeError("the page never painted the fleet")
        m = b.js("return window.hvnPage")
        cells = b.js("return window.hvnPage.cellCount()")
        heap0 = b.js("return performance.memory ? performance.memory.usedJSHeapSize : null")
        before = b.js("return [window.hvnPage.rows, window.hvnPage.applyMs]")
        bare = StreamReader(fleet.port)
        bare.start()
        time.sleep(1)  # Its hello (the whole fleet) arrives before the changes
        bare.counting = True
        started = time.monotonic()
        sent = fleet.changes(args.rate, args.seconds)
        # Let the last batch arrive, then compare with the database
        deadline = time.monotonic() + 30
        truth = None
        while time.monotonic() < deadline:
            rows, _ = api_rows(fleet.port)
            truth = sum(r["vcpus_used"] for r in rows)
            if b.js("return Number(document.getElementById('t-vcpus').dataset.used)") == truth:
                break
            time.sleep(0.1)
        wall = time.monotonic() - started
        after = b.js("return [window.hvnPage.rows, window.hvnPage.applyMs]")
        bare.counting = False
        lags = b.js("return window.hvnPage.lags")
        equal = b.js("return Number(document.getElementById('t-vcpus').dataset.used)") == truth
        b.js("if (window.gc) window.gc()")
        heap1 = b.js("return performance.memory ? performance.memory.usedJSHeapSize : null")
    return {"paint_ms": m["paintedMs"], "fetch_ms": fetch_s * 1000, "cells": cells,
            "sent": sent, "applied": after[0] - before[0],
            "busy": (after[1] - before[1]) / 1000 / wall, "lag_p50": percentile(lags, 0.5),
            "lag_p99": percentile(lags, 0.99), "bare_p50": percentile(bare.lags, 0.5),
            "bare_p99": percentile(bare.lags, 0.99), "bare_rows": bare.rows, "equal": equal, "heap0": heap0, "heap1": heap1,
            "seconds": args.seconds}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"))
    p.add_argument("--nodes", type=int, default=10000)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    fleet = Fleet(os.path.abspath(args.bin), args.nodes)
    try:
        results = [run(args, fleet) for _ in range(args.runs)]
    finally:
        fleet.close()
    med = lambda k: statistics.median(r[k] for r in results)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print("%d nodes, %d changes/s for %.0f s, %d runs (medians), load %s"
          % (args.nodes, args.rate, args.seconds, args.runs, load))
    print("| figure | page | baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    paint, fetch = med("paint_ms"), med("fetch_ms")
    print("| first paint of %d cells | %.0f ms | %.0f ms (the API fetch alone) | %.2f | ≤ 1000 ms "
          "| %s |" % (results[0]["cells"], paint, fetch, paint / fetch,
                      "yes" if paint <= 1000 else "no"))
    rate_applied = med("applied") / args.seconds
    rate_sent = med("sent") / args.seconds
    print("| rows applied / s | %.0f | %.0f sent | %.2f | keeps up | %s |"
          % (rate_applied, rate_sent, rate_applied / rate_sent,
             "yes" if all(r["equal"] for r in results) and med("lag_p99") < 1000 else "no"))
    print("| change age when applied, p50 / p99 | %.0f / %.0f ms | %.0f / %.0f ms (a bare "
          "Python client of the stream) | %.2f / %.2f | < 1000 ms | %s |"
          % (med("lag_p50"), med("lag_p99"), med("bare_p50"), med("bare_p99"),
             med("lag_p50") / med("bare_p50"), med("lag_p99") / med("bare_p99"),
             "yes" if med("lag_p99") < 1000 else "no"))
    print("| page main thread busy applying | %.1f %% | | | | |" % (100 * med("busy")))
    print("| page equals the database after | %s | | | | |"
          % ("yes" if all(r["equal"] for r in results) else "no"))
    if results[0]["heap0"]:
        print("| JS heap before / after the changes | %.1f / %.1f MB | | | bounded | |"
              % (med("heap0") / 1e6, med("heap1") / 1e6))


if __name__ == "__main__":
    main()
