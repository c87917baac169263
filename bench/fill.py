"""`python -m bench.fill`: why does the embedded broker slow down as it fills?

On a fresh broker of its own, fills one topic ("big", P partitions) with one-record batches
(the embedded producer profile) in steps, and after each step measures, with the broker's
CPU per record:
- produce into "big" (the topic that fills) and into "side" (a second topic written only by
  the probes, so it stays small): records/s of one producer sending 1,000 one-record batches
  at once, and the latency of one acknowledged send;
- fetch from "big": one record at the end of a partition, and one at its first offset (does
  reading early cost more than reading the tail?);
- ListOffsets(latest) of one partition.

Comparing the columns tells what the cost grows with: the records of one partition (a
partition-count run with the same fill is cheaper), of one topic ("side" stays fast), or of
the whole broker ("side" slows with "big"). Then one consumer reads "big" from its first
offsets (a restore, or an agent behind): records per fetch, broker CPU per fetch. Last, on
another fresh broker, whether a fetch waits for `fetch_min_bytes`. About a minute with the
defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.stats import cpu_seconds, percentile, rounded
from bench.view import rss_mb
from shared.broker import EmbeddedBroker, free_port

VALUE = b"x" * 700
#: A fill step that takes longer is reported as a stall (seen once: past ~20,000 records in
#: a partition, after the reads below, the broker spun a core and acknowledged nothing).
STALL_S = 120.0


async def burst(producer: AIOKafkaProducer, topic: str, partitions: int, records: int,
                first: int = 0) -> float:
    """Send `records` one-record batches round-robin over the partitions; seconds taken."""
    started = time.perf_counter()
    for chunk in range(0, records, 2000):
        futures = [await producer.send(topic, VALUE, partition=(first + n) % partitions)
                   for n in range(chunk, min(records, chunk + 2000))]
        await asyncio.gather(*futures)
    return time.perf_counter() - started


async def single_send_ms(producer: AIOKafkaProducer, topic: str, partitions: int,
                         sends: int = 50) -> float:
    out = []
    for n in range(sends):
        started = time.perf_counter()
        await producer.send_and_wait(topic, VALUE, partition=n % partitions)
        out.append((time.perf_counter() - started) * 1000)
    return percentile(out, 50)


async def fetch_ms(bootstrap: str, tp: TopicPartition, offset: int, tries: int = 20
                   ) -> float:
    """Median time to fetch the record at `offset` of `tp` (a consumer of its own, a fresh
    seek each time; at most one record per partition per fetch, as a tail reader gets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10,
                                enable_auto_commit=False, max_partition_fetch_bytes=1024)
    await consumer.start()
    consumer.assign([tp])
    out = []
    try:
        for _ in range(tries + 1):
            consumer.seek(tp, offset)
            started = time.perf_counter()
            got: list[Any] = []
            while not got:
                got = (await consumer.getmany(tp, timeout_ms=5000, max_records=1)).get(tp, [])
            out.append((time.perf_counter() - started) * 1000)
    finally:
        await consumer.stop()
    return percentile(out[1:], 50)


async def idle_cpu_ms_per_s(bootstrap: str, broker_pid: int, tps: list[TopicPartition],
                            wait_ms: int, seconds: float = 3.0) -> tuple[float, float]:
    """Broker CPU ms per second, and fetches per second, while one consumer waits at the
    end of `tps` with nothing new to read (as the aggregator's consumer does between
    records)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms,
                                enable_auto_commit=False)
    await consumer.start()
    consumer.assign(tps)
    try:
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        await consumer.getmany(timeout_ms=200)
        cpu, started, polls = cpu_seconds(broker_pid), time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            await consumer.getmany(timeout_ms=wait_ms)
            polls += 1
        elapsed = time.perf_counter() - started
        return (cpu_seconds(broker_pid) - cpu) * 1000 / elapsed, polls / elapsed
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, broker_pid: int, tps: list[TopicPartition],
                   wait_ms: int = 20) -> dict[str, float]:
    """One consumer reads `tps` from their first offsets to their ends (a restore, or an
    agent behind its input): fetches, records per fetch, broker CPU per fetch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms,
                                enable_auto_commit=False, max_poll_records=100000)
    await consumer.start()
    consumer.assign(tps)
    try:
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        cpu, started, fetches, records = cpu_seconds(broker_pid), time.perf_counter(), 0, 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            got = await consumer.getmany(timeout_ms=5000)
            fetches += 1
            records += sum(map(len, got.values()))
        cpu_ms = (cpu_seconds(broker_pid) - cpu) * 1000
        return {"read_records_per_s": rounded(records / (time.perf_counter() - started)),
                "read_records_per_fetch": rounded(records / max(fetches, 1)),
                "read_broker_cpu_ms_per_fetch": rounded(cpu_ms / max(fetches, 1), 2)}
    finally:
        await consumer.stop()


async def min_bytes_effect(bootstrap: str, min_bytes: int, wait_ms: int = 300
                           ) -> dict[str, float]:
    """Does the broker hold a fetch for `fetch_min_bytes`? The delay of a lone record to a
    consumer waiting at the tail, and records per fetch while 400 records/s arrive."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topic = f"minbytes-{min_bytes}"
    await admin.create_topics([NewTopic(topic, 4, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms,
                                fetch_min_bytes=min_bytes, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(4)]
    consumer.assign(tps)
    try:
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        await consumer.getmany(timeout_ms=wait_ms + 100)
        delays = []
        for n in range(5):
            started = time.perf_counter()
            await producer.send_and_wait(topic, VALUE, partition=n % 4)
            while not any((await consumer.getmany(timeout_ms=2000)).values()):
                pass
            delays.append((time.perf_counter() - started) * 1000)

        async def trickle() -> None:
            for n in range(800):
                await producer.send(topic, VALUE, partition=n % 4)
                await asyncio.sleep(0.0025)

        sending = asyncio.create_task(trickle())
        fetches = records = 0
        while records < 800:
            got = sum(map(len, (await consumer.getmany(timeout_ms=2000)).values()))
            if got:
                fetches, records = fetches + 1, records + got
        await sending
        return {"lone_record_ms_p50": rounded(percentile(delays, 50)),
                "records_per_fetch_at_400_per_s": rounded(records / fetches)}
    finally:
        await consumer.stop()
        await producer.stop()


async def list_offsets_ms(consumer: AIOKafkaConsumer, tp: TopicPartition,
                          tries: int = 20) -> float:
    out = []
    for _ in range(tries):
        started = time.perf_counter()
        await consumer.end_offsets([tp])
        out.append((time.perf_counter() - started) * 1000)
    return percentile(out, 50)


async def measure(bootstrap: str, broker_pid: int, partitions: int, steps: list[int]
                  ) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("big", partitions, 1), NewTopic("side", partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0,
                                acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10,
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    big0, side0 = TopicPartition("big", 0), TopicPartition("side", 0)
    filled, side_written, rows = 0, 0, []
    try:
        for target in steps:
            cpu, started = cpu_seconds(broker_pid), time.perf_counter()
            try:
                await asyncio.wait_for(burst(producer, "big", partitions, target - filled,
                                             filled), STALL_S)
            except TimeoutError:
                print(json.dumps({"partitions": partitions, "stalled_filling_to": target,
                                  "broker_rss_mb": rounded(rss_mb(broker_pid))}), flush=True)
                break
            fill_s = time.perf_counter() - started
            fill_cpu_ms = (cpu_seconds(broker_pid) - cpu) * 1000 / (target - filled)
            filled = target
            row: dict[str, Any] = {"partitions": partitions, "records": filled,
                                   "fill_records_per_s": rounded(
                                       (filled - (rows[-1]["records"] if rows else 0))
                                       / fill_s),
                                   "fill_broker_cpu_ms_per_record": rounded(fill_cpu_ms, 3)}
            for topic in ("big", "side"):
                cpu = cpu_seconds(broker_pid)
                seconds = await burst(producer, topic, partitions, 1000)
                row[f"produce_{topic}_records_per_s"] = rounded(1000 / seconds)
                row[f"produce_{topic}_broker_cpu_ms_per_record"] = rounded(
                    (cpu_seconds(broker_pid) - cpu) * 1000 / 1000, 3)
                row[f"send_{topic}_ms_p50"] = rounded(
                    await single_send_ms(producer, topic, partitions), 2)
            filled += 1050
            side_written += 1050
            end = (await consumer.end_offsets([big0]))[big0]
            cpu = cpu_seconds(broker_pid)
            row["fetch_big_tail_ms_p50"] = rounded(await fetch_ms(bootstrap, big0, end - 1), 2)
            row["fetch_big_tail_broker_cpu_ms"] = rounded(
                (cpu_seconds(broker_pid) - cpu) * 1000 / 20, 2)
            for name, topic in (("big", "big"), ("side", "side")):
                tps = [TopicPartition(topic, p) for p in range(partitions)]
                cpu_ms, fetches = await idle_cpu_ms_per_s(bootstrap, broker_pid, tps, 20)
                row[f"idle_tail_{name}_broker_cpu_ms_per_s"] = rounded(cpu_ms)
                row[f"idle_tail_{name}_fetches_per_s"] = rounded(fetches)
            row |= {f"{k}_big": v for k, v in (await read_all(
                bootstrap, broker_pid, [TopicPartition("big", p)
                                        for p in range(partitions)])).items()}
            row["list_offsets_big_ms_p50"] = rounded(await list_offsets_ms(consumer, big0), 2)
            row["list_offsets_side_ms_p50"] = rounded(await list_offsets_ms(consumer, side0), 2)
            row["broker_rss_mb"] = rounded(rss_mb(broker_pid))
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        await consumer.stop()
        await producer.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fill",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", default="4",
                        help="partition counts of the filled topic, one fresh broker each, "
                        "comma-separated")
    parser.add_argument("--steps", default="4000,20000,40000",
                        help="records in the filled topic at each measurement")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s]
    for partitions in (int(p) for p in args.partitions.split(",") if p):
        port = free_port()
        with EmbeddedBroker(port=port) as broker:
            assert broker.process is not None
            asyncio.run(measure(f"127.0.0.1:{port}", broker.process.pid, partitions, steps))
    port = free_port()
    with EmbeddedBroker(port=port):
        for min_bytes in (1, 65536):
            print(json.dumps({"fetch_min_bytes": min_bytes, "fetch_max_wait_ms": 300}
                             | asyncio.run(min_bytes_effect(f"127.0.0.1:{port}", min_bytes))),
                  flush=True)


if __name__ == "__main__":
    main()
