"""The embedded broker's sharp edges, measured, and the workarounds that cover them.

The `*_still_*` tests pin Tansu's known bugs: when one fails, the broker was fixed and the
matching workaround in `shared/kafka.py` / `shared/faust_app.py` can go. The `embedded_*`
tests fail if a workaround is removed while the bug is still there.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from shared.faust_app import faust_options
from shared.kafka import consumer_options, producer_options
from tests.helpers import async_wait_until, kafka_settings


async def _end_offset_after_burst(bootstrap: str, producer_kw: dict, n: int = 40) -> int:
    topic = f"quirk-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**producer_kw)
    await producer.start()
    try:
        # Queue the whole burst before any flush, so batching can happen.
        futures = [await producer.send(topic, b"x" * 64, partition=0) for _ in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def test_tansu_still_reports_wrong_end_offset_for_multi_record_batches(bootstrap):
    batched = {"bootstrap_servers": bootstrap, "linger_ms": 50}
    assert await _end_offset_after_burst(bootstrap, batched) < 40


async def test_embedded_producer_profile_keeps_end_offsets_exact(bootstrap):
    opts = producer_options(kafka_settings(bootstrap))
    assert opts["max_batch_size"] == 1
    assert await _end_offset_after_burst(bootstrap, opts) == 40


async def _join_seconds(bootstrap: str, session_ms: int) -> float:
    topic = f"join-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"g-{uuid.uuid4().hex[:8]}",
                                session_timeout_ms=session_ms,
                                heartbeat_interval_ms=min(500, session_ms // 3))
    started = time.monotonic()
    await consumer.start()
    try:
        async def assigned() -> bool:
            return bool(consumer.assignment())

        await async_wait_until(assigned, session_ms / 1000 * 3, 0.02, "an assignment")
        return time.monotonic() - started
    finally:
        await consumer.stop()


async def test_tansu_still_holds_join_for_half_the_session_timeout(bootstrap):
    short = await _join_seconds(bootstrap, 2000)
    longer = await _join_seconds(bootstrap, 6000)
    assert longer - short > 1.5, (short, longer)
    assert longer >= 2.5


def test_embedded_profile_keeps_sessions_short(bootstrap):
    k = kafka_settings(bootstrap)
    assert consumer_options(k)["session_timeout_ms"] <= 6000
    faust = faust_options(k)
    assert faust["broker_session_timeout"] <= 6
    assert faust["producer_max_batch_size"] == 1
    assert producer_options(k)["enable_idempotence"] is False


async def test_tansu_still_rejects_idempotent_producers(bootstrap):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                request_timeout_ms=5000)
    with pytest.raises(Exception):  # noqa: B017 (any failure at InitProducerId will do)
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait("idem", b"x"), 10)
    await producer.stop()


def test_kafka_profile_uses_apache_kafka_defaults(bootstrap):
    from shared.settings import KafkaSettings

    k = KafkaSettings(bootstrap_servers=bootstrap, profile="kafka")
    assert "max_batch_size" not in producer_options(k)
    assert consumer_options(k)["session_timeout_ms"] == 45000
    assert "producer_max_batch_size" not in faust_options(k)


async def test_tansu_still_answers_an_empty_fetch_only_when_its_wait_runs_out(bootstrap):
    """A record written while a fetch waits is not handed to it at once (as Apache Kafka
    does) but when the wait runs out: the fetch wait is latency on every hop, hence the
    embedded profile's short one (`KafkaSettings.fetch_max_wait`). Measured with a plain
    consumer: visibility p50 24 ms at a 100 ms wait, 5 ms at 20 ms."""
    topic = f"wait-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**producer_options(kafka_settings(bootstrap)))
    await producer.start()
    await producer.send_and_wait(topic, b"create", partition=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=1000)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    await consumer.position(tp)
    sent: dict[bytes, float] = {}
    delays: list[float] = []

    async def collect() -> None:
        while len(delays) < 6:
            for record in (await consumer.getmany(timeout_ms=2000)).get(tp, []):
                delays.append(time.monotonic() - sent[record.value])

    collector = asyncio.create_task(collect())
    try:
        for n in range(6):
            # Paced on purpose: each record must land while the consumer's fetch is already
            # waiting on an empty partition, which is the delay this test measures.
            await asyncio.sleep(0.1 + 0.05 * n)
            value = str(n).encode()
            sent[value] = time.monotonic()
            await producer.send(topic, value, partition=0)
        await asyncio.wait_for(collector, 20)
    finally:
        collector.cancel()
        await consumer.stop()
        await producer.stop()
    # A broker that hands new records to a waiting fetch shows a few ms each.
    assert sorted(delays)[len(delays) // 2] > 0.08, delays


async def _tail_fetch_ms(bootstrap: str, tp: TopicPartition, tries: int = 15) -> float:
    """Median wall time of a fetch that returns the last record of `tp` (fresh seek each)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10,
                                enable_auto_commit=False, max_partition_fetch_bytes=1024)
    await consumer.start()
    consumer.assign([tp])
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        times = []
        for _ in range(tries + 1):
            consumer.seek(tp, end - 1)
            started = time.perf_counter()
            got: list = []
            while not got:
                got = (await consumer.getmany(tp, timeout_ms=5000, max_records=1)).get(tp, [])
            times.append(time.perf_counter() - started)
        return sorted(times[1:])[tries // 2] * 1000
    finally:
        await consumer.stop()


async def test_tansu_still_scans_a_partition_for_every_fetch_that_reads_from_it(bootstrap):
    """A fetch that returns records of a partition costs the broker time in proportion to
    the records the partition holds (about 1.4 µs each, `python -m bench.fill`), even for
    the last record alone; produce does not grow so. Why the aggregator's consumer at the
    tail of its ever-growing company-index topic slowed the broker as the view grew, and why
    RADAR_AGGREGATOR_FETCH_MIN_BYTES lets a fetch wait for more records (README "The view at
    scale"). Measured here: about 1 ms at 200 records, 11 ms at 8,000."""
    topic = f"scan-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**producer_options(kafka_settings(bootstrap)))
    await producer.start()
    try:
        for partition, records in ((0, 200), (1, 8000)):
            for chunk in range(0, records, 2000):
                await asyncio.gather(*[await producer.send(topic, b"x" * 700,
                                                           partition=partition)
                                       for _ in range(min(2000, records - chunk))])
    finally:
        await producer.stop()
    small = await _tail_fetch_ms(bootstrap, TopicPartition(topic, 0))
    big = await _tail_fetch_ms(bootstrap, TopicPartition(topic, 1))
    # A broker that finds a record by an index answers both alike.
    assert big > 3 * small, (small, big)
