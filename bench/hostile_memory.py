#!/usr/bin/python3
"""hostile_memory.py — what peers that never read cost hvn-broker's memory.

    bench/hostile_memory.py [--bin build/bin] snapshots [--clients 60] [--nodes 10000]
    bench/hostile_memory.py [--bin build/bin] subscriber [--updates 20000] [--padding 32768]

Starts hvn-broker on free loopback ports (extra broker options after
"--"), and reports its VmRSS as an operator would see it:

  snapshots: --nodes nodes are published with hvn-pub (about 700 bytes
      each: a 7 MB snapshot); --clients DEALERs connected from 127.0.0.2
      ask for a snapshot and never read; then an honest hvn-sub --snapshot
      from 127.0.0.1 takes the whole fleet (or is refused); the broker's
      memory after the requests, after the honest client, and after the
      stall timeout (--snapshot-stall-ms, 30 s by default: the run waits it
      out), with the STATS counters.
  subscriber: one SUB that never reads, then --updates valid notifications
      of one node padded with an unknown key of --padding bytes (a reader
      ignores unknown keys); the broker's memory before, after, and after
      the SUB closed.

Prints one line of figures per step; they go in docs/security.md.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def stats(ctx, service):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(service)
    s.send(b"STATS")
    if not s.poll(5000):
        s.close()
        return {}
    frames = s.recv_multipart()
    s.close()
    return msgpack.unpackb(frames[1], raw=False) if frames[0] == b"STATS" else {}


def start_broker(bindir, extra):
    ports = [free_port() for _ in range(3)]
    eps = ["tcp://127.0.0.1:%d" % p for p in ports]
    argv = [os.path.join(bindir, "hvn-broker"), "--frontend", eps[0], "--backend", eps[1],
            "--service", eps[2], "--name", "mem"] + extra
    broker = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    ctx = zmq.Context.instance()
    deadline = time.monotonic() + 10
    while not stats(ctx, eps[2]):
        if time.monotonic() > deadline or broker.poll() is not None:
            sys.exit("hvn-broker did not start")
    return broker, eps


def publish_nodes(bindir, frontend, nodes):
    example = subprocess.run([os.path.join(bindir, "hvn-pub"), "--example", "--host", "cmp-x"],
                             capture_output=True, text=True, check=True).stdout.strip()
    uuid = example.split('"uuid": "')[1].split('"')[0] if '"uuid": "' in example else None
    if uuid is None:
        uuid = example.split('"uuid":"')[1].split('"')[0]
    lines = []
    for n in range(nodes):
        fresh = "%s%012x" % (uuid[:24], n)
        lines.append(example.replace(uuid, fresh))
    subprocess.run([os.path.join(bindir, "hvn-pub"), "--connect", frontend, "--host", "cmp-x",
                    "--flush-timeout", "60"], input="\n".join(lines) + "\n", text=True,
                   check=True)


def snapshots(args, extra):
    broker, (frontend, backend, service) = start_broker(args.bin, extra)
    ctx = zmq.Context.instance()
    try:
        publish_nodes(args.bin, frontend, args.nodes)
        while stats(ctx, service).get("cache_nodes", 0) < args.nodes:
            time.sleep(0.1)
        before = rss_mib(broker.pid)
        port = service.rsplit(":", 1)[1]
        clients = []
        for _ in range(args.clients):
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.RCVHWM, 1)
            d.setsockopt(zmq.RCVBUF, 4096)
            d.setsockopt(zmq.LINGER, 0)
            d.connect("tcp://127.0.0.2:0;127.0.0.1:%s" % port)
            d.send_multipart([b"SNAPSHOT", b""])
            clients.append(d)
        time.sleep(3)
        held = rss_mib(broker.pid)
        st = stats(ctx, service)
        print("snapshots: %d nodes; VmRSS %.0f MiB before, %.0f MiB with %d clients that never "
              "read (in progress %s, limited %s, bytes counted %s)"
              % (args.nodes, before, held, args.clients, st.get("snapshots_active", "-"),
                 st.get("limited_snapshots", "-"), st.get("snapshot_bytes", "-")), flush=True)
        t0 = time.monotonic()
        sub = subprocess.run([os.path.join(args.bin, "hvn-sub"), "--connect", backend,
                              "--service", service, "--snapshot", "--count", str(args.nodes),
                              "--timeout", "30"], capture_output=True, text=True)
        print("snapshots: honest hvn-sub --snapshot from 127.0.0.1: exit %d, %d lines in %.1f s%s"
              % (sub.returncode, sub.stdout.count("\n"), time.monotonic() - t0,
                 (": " + sub.stderr.strip().splitlines()[-1]) if sub.returncode else ""),
              flush=True)
        stall_s = args.stall_s
        time.sleep(stall_s + 3)
        st = stats(ctx, service)
        print("snapshots: VmRSS %.0f MiB %d s later (snapshots %s, snapshots_stalled %s, "
              "snapshots_failed %s)" % (rss_mib(broker.pid), stall_s + 3, st.get("snapshots"),
                                        st.get("snapshots_stalled", "-"),
                                        st.get("snapshots_failed")), flush=True)
        for d in clients:
            d.close()
    finally:
        broker.terminate()
        broker.wait()


def subscriber(args, extra):
    broker, (frontend, backend, service) = start_broker(args.bin, extra + ["--ring-bytes", "0"])
    ctx = zmq.Context.instance()
    try:
        stuck = ctx.socket(zmq.SUB)
        stuck.setsockopt(zmq.RCVHWM, 1)
        stuck.setsockopt(zmq.RCVBUF, 4096)
        stuck.setsockopt(zmq.LINGER, 0)
        stuck.connect(backend)
        stuck.setsockopt(zmq.SUBSCRIBE, b"")
        while stats(ctx, service).get("subscriptions", 0) < 1:
            time.sleep(0.05)
        publish_nodes(args.bin, frontend, 1)
        d = ctx.socket(zmq.DEALER)
        d.connect(service)
        d.send_multipart([b"SNAPSHOT", b""])
        item = d.recv_multipart()
        d.close()
        topic, header, body = item[1], item[2], item[3]
        assert body[0] == 0x86
        pad = b"\xa9x-padding\xdb" + struct.pack(">I", args.padding) + b"x" * args.padding
        padded = b"\x87" + body[1:] + pad
        pub = ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.SNDHWM, 0)
        pub.connect(frontend)
        pub.recv()  # the broker's subscription
        instance = os.urandom(16)
        before = rss_mib(broker.pid)
        base = stats(ctx, service).get("forwarded", 0)
        for seq in range(1, args.updates + 1):
            pub.send_multipart([topic, header[:2] + struct.pack(">Q", seq) + instance, padded])
            if seq % 200 == 0:
                while stats(ctx, service).get("forwarded", 0) < base + seq:
                    time.sleep(0.01)
        while stats(ctx, service).get("forwarded", 0) < base + args.updates:
            time.sleep(0.05)
        held = rss_mib(broker.pid)
        st = stats(ctx, service)
        stuck.close()
        time.sleep(3)
        print("subscriber: %d updates of %d bytes to a SUB that never reads (queue %s messages): "
              "VmRSS %.0f MiB before, %.0f MiB after, %.0f MiB 3 s after it closed (refused %s)"
              % (args.updates, len(padded), st.get("subscriber_queue", "100000"), before, held,
                 rss_mib(broker.pid), st.get("refused")), flush=True)
        pub.close()
    finally:
        broker.terminate()
        broker.wait()


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="build/bin")
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("snapshots")
    s.add_argument("--clients", type=int, default=60)
    s.add_argument("--nodes", type=int, default=10000)
    s.add_argument("--stall-s", type=int, default=30)
    u = sub.add_parser("subscriber")
    u.add_argument("--updates", type=int, default=20000)
    u.add_argument("--padding", type=int, default=32768)
    args = p.parse_args(argv)
    (snapshots if args.mode == "snapshots" else subscriber)(args, extra)


if __name__ == "__main__":
    main()
