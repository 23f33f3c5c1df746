#!/usr/bin/python3
"""A REPLAY client written from PROTOCOL.md alone: pyzmq + msgpack, no hvnotify code.

Subscribes to everything on the backend and records the frames of the first COUNT
notifications (kind 1) as the broker forwarded them; then asks the service for
["REPLAY", instance, FIRST, LAST] and checks that the ITEMs are exactly the
recorded frames of that range, in seq order, and that END's count and range
say so. Then sends malformed REPLAYs and checks that each is answered ERROR.
Prints one line per check passed; exits 0 when all passed, 1 otherwise.
usage: hvn_replay_client.py BACKEND SERVICE COUNT FIRST LAST
"""
import struct
import sys
import uuid

import msgpack
import zmq

backend, service = sys.argv[1], sys.argv[2]
count, first, last = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
context = zmq.Context.instance()


def fail(why):
    print("FAIL", why, flush=True)
    sys.exit(1)


sub = context.socket(zmq.SUB)
sub.setsockopt(zmq.RCVTIMEO, 20000)
sub.setsockopt_string(zmq.SUBSCRIBE, "")
sub.connect(backend)

forwarded = {}  # seq -> [topic, header, body]
instance = None
while len(forwarded) < count:
    frames = sub.recv_multipart()
    if len(frames) != 3 or len(frames[1]) != 26:
        fail("a message that is not 3 frames with a 26-byte header")
    version, kind, seq = struct.unpack("!BBQ", frames[1][:10])
    if kind != 1:
        continue  # heartbeats
    instance = uuid.UUID(bytes=frames[1][10:26])
    forwarded[seq] = frames
print("forwarded", len(forwarded), "of instance", instance, flush=True)

dealer = context.socket(zmq.DEALER)
dealer.setsockopt(zmq.RCVTIMEO, 10000)
dealer.setsockopt(zmq.LINGER, 0)
dealer.connect(service)


def replay(*frames):
    """Sends a request; returns (items, end body) or ("ERROR", text)."""
    dealer.send_multipart([b"REPLAY"] + [f if isinstance(f, bytes) else f.encode() for f in frames])
    items = []
    while True:
        reply = dealer.recv_multipart()
        if reply[0] == b"ITEM":
            if len(reply) != 4:
                fail("an ITEM that is not 4 frames")
            items.append(reply[1:])
        elif reply[0] == b"END":
            return items, msgpack.unpackb(reply[1], raw=False)
        elif reply[0] == b"ERROR":
            return "ERROR", reply[1].decode()
        else:
            fail("unknown reply %r" % reply[0])


items, end = replay(str(instance), str(first), str(last))
expected = [forwarded[s] for s in sorted(forwarded) if first <= s <= last]
if items != expected:
    fail("%d items, not the %d frames forwarded in %d..%d" % (len(items), len(expected), first, last))
if end["count"] != len(items):
    fail("END count %r for %d items" % (end["count"], len(items)))
if (end["first"], end["last"]) != (min(forwarded), max(forwarded)):
    fail("END range %r..%r, forwarded %d..%d" % (end["first"], end["last"], min(forwarded),
                                                   max(forwarded)))
if not isinstance(end["broker_id"], str) or not end["broker_id"]:
    fail("END without broker_id")
print("replayed", len(items), "items exactly as forwarded; END", end["count"], end["first"],
      end["last"], flush=True)

items, end = replay(str(uuid.uuid4()), "1", "10")
if items != [] or end["count"] != 0 or (end["first"], end["last"]) != (0, 0):
    fail("an unknown instance replays %r %r" % (items, end))
print("unknown instance: nothing, END 0 0 0", flush=True)

bad = [
    ("not-a-uuid", "1", "2"),
    (str(instance), "x", "2"),
    (str(instance), "-1", "2"),
    (str(instance), "5", "4"),
    (str(instance), "1", "100000000"),
    (str(instance), "1"),
]
for request in bad:
    answer = replay(*request)
    if answer[0] != "ERROR":
        fail("request %r was answered %r" % (request, answer))
print("refused", len(bad), "bad requests", flush=True)
