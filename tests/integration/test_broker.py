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
