"""Producer and consumer benchmark of the Python API, with the Rust benchmark programs' options.

    python -m diaspora_stream.bench producer -d files -c files.json -t topic -n 200000 -s 1024
    python -m diaspora_stream.bench consumer -d files -c files.json -t topic -n 200000

The producer pushes ``-n`` events of ``-s`` data bytes (slices of one buffer, shared without
copies, as ``diaspora-producer-benchmark`` does) and ``-m`` metadata bytes (a JSON string given
as JSON text), with batches of ``-b`` events and ``-p`` pool threads, then flushes.
``--push-many K`` pushes K events per call (``Producer.push_many``) instead of one per ``push``.
The consumer pulls ``-n`` events with their data (``--pull-many K``: ``Consumer.pull_many`` of
up to K events) and touches each event's data view. Both print ``Throughput: X events/s`` like
the Rust programs, so that ``scripts/bench-python.sh`` reads both the same way.
"""

import argparse
import json
import sys
import time

from .api import Driver


def metadata_text(size, seed):
    """JSON text of a string of ``size`` bytes (quotes included), varied per event."""
    n = max(size - 2, 0)
    letters = "".join(chr(ord("a") + (seed * 7 + i) % 26) for i in range(n))
    return json.dumps(letters)


def open_topic(args):
    options = {}
    if args.driver_config:
        with open(args.driver_config) as f:
            options = json.load(f)
    driver = Driver(backend=args.driver, options=options)
    if not driver.topic_exists(args.topic):
        driver.create_topic(args.topic)
    return driver, driver.open_topic(args.topic)


def produce(args, driver, topic):
    pool = driver.make_thread_pool(args.num_threads)
    producer = topic.producer("benchmark-producer", batch_size=args.batch_size, thread_pool=pool)
    size = args.data_size
    slots = max(1, min(args.num_events, 1 << 16, (64 << 20) // max(size, 1)))
    total = max(size * slots, size)
    # The Rust program's bytes ((i * 31) % 251), built from one period of the pattern.
    period = bytes((i * 31) % 251 for i in range(251))
    buffer = memoryview((period * (total // 251 + 1))[:total])
    views = [buffer[k * size : (k + 1) * size] for k in range(slots)]
    metadata = [metadata_text(args.metadata_size, i) for i in range(64)]
    n = args.num_events
    start = time.perf_counter()
    if args.push_many:
        k = args.push_many
        for first in range(0, n, k):
            producer.push_many(
                [(metadata[i % 64], views[i % slots]) for i in range(first, min(first + k, n))]
            )
    else:
        push = producer.push
        for i in range(n):
            push(metadata[i % 64], views[i % slots])
    producer.flush().wait()
    elapsed = time.perf_counter() - start
    producer.close()
    return n, elapsed


def consume(args, driver, topic):
    pool = driver.make_thread_pool(args.num_threads)
    consumer = topic.consumer("benchmark-consumer", thread_pool=pool, start="beginning")
    n = args.num_events
    got = 0
    touched = 0
    start = time.perf_counter()
    if args.pull_many:
        while got < n:
            events = consumer.pull_many(min(args.pull_many, n - got), timeout_ms=5000)
            if not events:
                break
            for ev in events:
                touched += sum(len(v) for v in ev.data)
            got += len(events)
    else:
        for ev in consumer.events(timeout_ms=5000):
            touched += sum(len(v) for v in ev.data)
            got += 1
            if got == n:
                break
    elapsed = time.perf_counter() - start
    if got < n:
        print(f"warning: only {got} of {n} events arrived", file=sys.stderr)
    return got, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m diaspora_stream.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("role", choices=["producer", "consumer"])
    parser.add_argument("-d", "--driver", required=True, help="driver name (files, memory...)")
    parser.add_argument("-c", "--driver-config", help="JSON file with the driver's options")
    parser.add_argument("-t", "--topic", required=True, help="topic (created if missing)")
    parser.add_argument("-n", "--num-events", type=int, default=1000)
    parser.add_argument("-s", "--data-size", type=int, default=0, help="bytes of data per event")
    parser.add_argument("-m", "--metadata-size", type=int, default=16)
    parser.add_argument("-b", "--batch-size", type=int, default=128)
    parser.add_argument("-p", "--num-threads", type=int, default=1, help="pool threads")
    parser.add_argument("--push-many", type=int, default=0, help="events per push_many call")
    parser.add_argument("--pull-many", type=int, default=0, help="events per pull_many call")
    args = parser.parse_args(argv)
    driver, topic = open_topic(args)
    run = produce if args.role == "producer" else consume
    n, elapsed = run(args, driver, topic)
    rate = n / elapsed if elapsed > 0 else 0.0
    print(f"Events: {n}")
    print(f"Time: {elapsed:.6f} s")
    print(f"Throughput: {rate:.1f} events/s")
    print(f"Bandwidth: {rate * args.data_size / 1e6:.1f} MB/s" if args.role == "producer" else "")


if __name__ == "__main__":
    main()
