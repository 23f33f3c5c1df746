#!/usr/bin/python3
"""A subscriber written from PROTOCOL.md alone: pyzmq + msgpack, no hvnotify code.

Prints one line per notification: "<event_type> <seq> <uuid> <memory_mb_used|->".
usage: hvn_client.py BACKEND_ENDPOINT COUNT [TOPIC_PREFIX]
"""
import struct
import sys

import msgpack
import zmq

endpoint, count = sys.argv[1], int(sys.argv[2])
prefix = sys.argv[3] if len(sys.argv) > 3 else ""

sub = zmq.Context.instance().socket(zmq.SUB)
sub.setsockopt(zmq.RCVTIMEO, 10000)
sub.setsockopt_string(zmq.SUBSCRIBE, prefix)
sub.connect(endpoint)

seen = 0
while seen < count:
    topic, header, body = sub.recv_multipart()
    version, kind, seq = struct.unpack("!BBQ", header[:10])
    assert version == 1 and len(header) == 26
    if kind != 1:
        continue  # heartbeats
    msg = msgpack.unpackb(body, raw=False)
    event, host = topic.decode().split("@", 1)
    assert msg["event_type"] == event
    assert msg["publisher_id"].split(":", 1)[1] == host
    data = msg["payload"]["nova_object.data"]
    print(event, seq, data["uuid"], data.get("memory_mb_used", "-"), flush=True)
    seen += 1
