"""`python -m bench.broker`: what the embedded broker's two latency-relevant quirks cost,
on a fresh broker of its own (about 30 s):

- how long a record takes to reach a plain consumer at each fetch wait (Tansu answers a
  fetch that finds nothing only when its wait runs out);
- what one record per batch (the embedded producer profile) costs per record against
  batching: client and broker CPU, records/s of one producer;
- an offset commit: client and broker CPU (a consumer committing after every poll pays it
  per poll);
- the end offset ListOffsets reports after a burst written in batches, beside the fetch
  response's high watermark (why the workaround exists).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.stats import cpu_seconds, percentile
from shared.broker import EmbeddedBroker, free_port


async def visibility_ms(bootstrap: str, topic: str, wait_ms: int, records: int) -> list[float]:
    """Delay from each send to the record's arrival at a consumer polling continuously."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms)
    await producer.start()
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(4)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    sent: dict[int, float] = {}
    delays: list[float] = []
    stop = asyncio.Event()

    async def collect() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for batch in batches.values():
                delays.extend((now - sent[int(r.value)]) * 1000 for r in batch)

    collector = asyncio.create_task(collect())
    try:
        await asyncio.sleep(0.5)
        rng = random.Random(wait_ms)
        for n in range(records):
            await asyncio.sleep(rng.uniform(0.005, 0.035))
            sent[n] = time.perf_counter()
            await producer.send(topic, str(n).encode(), partition=n % 4)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await collector
        await consumer.stop()
        await producer.stop()
    return delays


async def record_cost(bootstrap: str, topic: str, max_batch_size: int, broker_pid: int,
                      records: int) -> tuple[float, float, float]:
    """(records/s, client CPU ms per record, broker CPU ms per record) of one producer
    writing `records` 700-byte records over 4 partitions as fast as it can."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=max_batch_size,
                                linger_ms=0, acks="all")
    await producer.start()
    try:
        started, client, broker = time.perf_counter(), time.process_time(), \
            cpu_seconds(broker_pid)
        futures = [await producer.send(topic, b"x" * 700, partition=n % 4)
                   for n in range(records)]
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
        return (records / seconds, (time.process_time() - client) * 1000 / records,
                (cpu_seconds(broker_pid) - broker) * 1000 / records)
    finally:
        await producer.stop()


async def end_offset_after_burst(bootstrap: str, topic: str, records: int = 40
                                 ) -> tuple[int, int | None]:
    """(ListOffsets' end offset, the fetch's high watermark) after `records` in batches."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    await asyncio.gather(*[await producer.send(topic, b"x", partition=0)
                           for _ in range(records)])
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        read = 0
        while read < records:
            read += len((await consumer.getmany(timeout_ms=500)).get(tp, []))
        return (await consumer.end_offsets([tp]))[tp], consumer.highwater(tp)
    finally:
        await consumer.stop()


async def commit_cost(bootstrap: str, topic: str, broker_pid: int, commits: int
                      ) -> tuple[float, float]:
    """Client and broker CPU ms per offset commit of a group consumer: what a consumer that
    commits after every poll pays per poll (one article per poll under paced arrivals)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="commit-cost",
                                enable_auto_commit=False, session_timeout_ms=6000,
                                heartbeat_interval_ms=1000, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        parts = sorted(consumer.assignment())
        client, broker = time.process_time(), cpu_seconds(broker_pid)
        for i in range(commits):
            await consumer.commit({parts[i % len(parts)]: 1 + i // len(parts)})
        return ((time.process_time() - client) * 1000 / commits,
                (cpu_seconds(broker_pid) - broker) * 1000 / commits)
    finally:
        await consumer.stop()


async def measure(bootstrap: str, broker_pid: int, waits: list[int], records: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    sizes = (1, 16384, 1, 16384)
    await admin.create_topics([NewTopic("visibility", 4, 1), NewTopic("burst", 1, 1)]
                              + [NewTopic(f"cost-{n}", 4, 1) for n in range(len(sizes))])
    await admin.close()
    for wait_ms in waits:
        ms = await visibility_ms(bootstrap, "visibility", wait_ms, 150)
        print(f"fetch_max_wait_ms {wait_ms:4d}: record visible after p50 / p95 / p99 "
              f"{percentile(ms, 50):.1f} / {percentile(ms, 95):.1f} / "
              f"{percentile(ms, 99):.1f} ms ({len(ms)} records)", flush=True)
    for n, size in enumerate(sizes):
        per_s, client, broker = await record_cost(bootstrap, f"cost-{n}", size, broker_pid,
                                                  records)
        print(f"max_batch_size {size:5d}: {per_s:9,.0f} records/s; CPU per record: client "
              f"{client:.3f} ms, broker {broker:.3f} ms", flush=True)
    client, broker = await commit_cost(bootstrap, "cost-0", broker_pid, 2000)
    print(f"offset commit (2,000, one group consumer): CPU per commit: client {client:.3f} ms, "
          f"broker {broker:.3f} ms", flush=True)
    end, highwater = await end_offset_after_burst(bootstrap, "burst")
    print(f"40 records written in batches: ListOffsets end offset {end}, fetch high "
          f"watermark {highwater}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.broker",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--waits", default="100,20,10",
                        help="fetch waits to measure visibility at, ms, comma-separated")
    parser.add_argument("--records", type=int, default=8000,
                        help="records per producer-cost run")
    args = parser.parse_args(argv)
    port = free_port()
    with EmbeddedBroker(port=port) as broker:
        assert broker.process is not None
        asyncio.run(measure(f"127.0.0.1:{port}", broker.process.pid,
                            [int(w) for w in args.waits.split(",") if w], args.records))


if __name__ == "__main__":
    main()
