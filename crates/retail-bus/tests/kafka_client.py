#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka) for the bus integration tests.

    kafka_client.py produce BOOTSTRAP TOPIC COUNT STORES   # payload "store_xxx:seq", key store_xxx
    kafka_client.py consume BOOTSTRAP TOPIC COUNT          # prints one JSON line per message

produce uses the Java-compatible murmur2 partitioner, as our bus does, so the test can check that
both clients agree on each key's partition. Exits non-zero on any delivery error or timeout.
"""
import json
import sys
import time

from confluent_kafka import Consumer, Producer


def produce(bootstrap, topic, count, stores):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random", "linger.ms": 5})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for i in range(count):
        key = "store_%03d" % (i % stores)
        payload = "%s:%08d" % (key, i // stores)
        while True:
            try:
                p.produce(topic, key=key.encode(), value=payload.encode(), on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(30)
    if left or failures:
        sys.exit("produce: %d undelivered, errors: %s" % (left, failures[:3]))
    print(json.dumps({"produced": count}))


def consume(bootstrap, topic, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-client-py-%d" % time.time_ns(),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    deadline = time.time() + 60
    while got < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit("consume: %s" % m.error())
        print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                          "key": m.key().decode(), "payload": m.value().decode()}))
        got += 1
    c.close()
    if got < count:
        sys.exit("consume: read %d of %d messages in 60 s" % (got, count))


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "produce":
        produce(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "consume":
        consume(args[0], args[1], int(args[2]))
    else:
        sys.exit("usage: kafka_client.py produce|consume ...")
