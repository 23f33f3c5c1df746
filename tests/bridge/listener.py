#!/usr/bin/python3
"""listener.py — a real consumer of hvn-bridge's notifications, for the tests.

  listener.py oslo URL EXCHANGE TOPIC COUNT TIMEOUT [durable]
      an oslo.messaging NotificationListener (the way Watcher, Ceilometer or an
      operator's own consumer listens); prints READY once started, then one JSON
      line per notification: message_id, publisher_id, event_type, priority,
      payload, as oslo hands them to the endpoint.
  listener.py raw URL QUEUE COUNT TIMEOUT
      reads COUNT messages from QUEUE with kombu and prints, per message, its
      AMQP properties and its body as received.

Exits 0 after COUNT messages (oslo: COUNT distinct message ids), 1 when TIMEOUT seconds pass first.
"""
import json
import os
import sys
import tempfile
import threading


def oslo(url, exchange, topic, count, timeout, durable):
    from oslo_config import cfg
    import oslo_messaging

    # The consumer's settings the way nova.conf / watcher.conf write them
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[DEFAULT]\ncontrol_exchange = %s\n" % exchange)
        f.write("[oslo_messaging_rabbit]\namqp_durable_queues = %s\n" % durable)
        f.write("rabbit_retry_interval = 1\nrabbit_retry_backoff = 1\n")
        f.write("rabbit_interval_max = 1\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", f.name], project="hvn-test")
    os.unlink(f.name)
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    done = threading.Event()
    seen = set()  # distinct message ids: a redelivery is printed, not counted
    lock = threading.Lock()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            line = json.dumps({"message_id": metadata.get("message_id"),
                               "timestamp": metadata.get("timestamp"),
                               "publisher_id": publisher_id,
                               "event_type": event_type,
                               "priority": "INFO",
                               "payload": payload})
            with lock:
                print(line, flush=True)
                seen.add(metadata.get("message_id"))
                if len(seen) >= count:
                    done.set()

    targets = [oslo_messaging.Target(topic=topic, exchange=exchange)]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [Endpoint()], executor="threading")
    listener.start()
    print("READY", flush=True)
    ok = done.wait(timeout)
    listener.stop()
    listener.wait()
    transport.cleanup()
    return 0 if ok else 1


def raw(url, queue, count, timeout):
    import kombu
    got = 0
    with kombu.Connection(url.replace("rabbit://", "amqp://", 1)) as conn:
        simple = conn.SimpleQueue(kombu.Queue(queue, no_declare=True))
        print("READY", flush=True)
        while got < count:
            try:
                msg = simple.get(block=True, timeout=timeout)
            except Exception:
                return 1
            print(json.dumps({"properties": {"content_type": msg.content_type,
                                             "content_encoding": msg.content_encoding,
                                             "delivery_mode":
                                                 msg.properties.get("delivery_mode")},
                              "body": msg.body if isinstance(msg.body, str)
                              else msg.body.decode("utf-8")}), flush=True)
            msg.ack()
            got += 1
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "oslo" and len(a) in (6, 7):
        sys.exit(oslo(a[1], a[2], a[3], int(a[4]), float(a[5]),
                      len(a) == 7 and a[6] == "durable"))
    if a and a[0] == "raw" and len(a) == 5:
        sys.exit(raw(a[1], a[2], int(a[3]), float(a[4])))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
