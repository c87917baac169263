"""The dedup memory kept in Kafka: `news.seen.v1` (compacted, keyed by article_id).

At start-up the whole topic is read into the `SeenIndex` before the ingestor reports ready;
afterwards the topic is followed, so stories published by `radar ingest` or another
ingestor replica count as seen too. Stories that leave the window get a tombstone (null
value) so compaction can drop them on Apache Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from services.ingestor import metrics as in_metrics
from services.ingestor.dedup import Fingerprint, SeenIndex
from shared.contracts import SeenArticle, utcnow
from shared.kafka import Rejected, decode, make_consumer, topic_partitions
from shared.settings import KafkaSettings
from shared.waiting import wait_until

log = logging.getLogger(__name__)


def apply_record(index: SeenIndex, record: ConsumerRecord, now: datetime) -> str:
    """One seen record into the index; returns applied | tombstone | expired, or the reason
    it was rejected (invalid_json, schema_violation): a metrics label either way."""
    if record.value is None:
        if record.key is not None:
            index.remove(record.key.decode(errors="replace"))
        return "tombstone"
    seen = decode(SeenArticle, record.value)
    if isinstance(seen, Rejected):
        log.warning("seen topic %s[%s]@%s: %s", record.topic, record.partition, record.offset,
                    seen.error)
        return seen.reason
    if seen.seen_at <= now - index.window:
        return "expired"
    index.add(Fingerprint.from_record(seen), seen.seen_at)
    return "applied"


class SeenStore:
    """Replays and follows the seen topic into `index` (group-less: every partition)."""

    def __init__(self, kafka: KafkaSettings, topic: str, index: SeenIndex, *,
                 client_id: str = "radar-ingestor-seen",
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.topic = topic
        self.index = index
        self.clock = clock
        self.consumer: AIOKafkaConsumer = make_consumer(kafka, group_id=None,
                                                        client_id=client_id, background=True)
        self.replayed = False
        self.records = 0

    async def replay(self, timeout: float = 60.0) -> int:
        """Read the topic up to its end as of now; returns the number of records read."""
        await self.consumer.start()
        started = time.monotonic()
        tps = await topic_partitions(self.consumer, self.topic, timeout=timeout)
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        ends = await self.consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}

        async def read_to_the_end() -> bool:
            if remaining:
                await self._poll(500)
            for tp in list(remaining):
                if await self.consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            return not remaining

        await wait_until(read_to_the_end, timeout=timeout - (time.monotonic() - started),
                         interval=0, message=f"replay of {self.topic} incomplete after "
                         f"{timeout}s")
        self.replayed = True
        in_metrics.SEEN.set(len(self.index))
        log.info("replayed %d seen record(s) from %s: %d stories in the window", self.records,
                 self.topic, len(self.index))
        return self.records

    async def follow(self, stop: asyncio.Event) -> None:
        """Keep applying new records until `stop` (call after `replay`)."""
        while not stop.is_set():
            await self._poll(500)

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        now = self.clock()
        for records in batches.values():
            for record in records:
                in_metrics.SEEN_REPLAYED.labels(apply_record(self.index, record, now)).inc()
                self.records += 1
        if batches:
            in_metrics.SEEN.set(len(self.index))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()


async def expire(index: SeenIndex, producer: AIOKafkaProducer, topic: str,
                 now: datetime) -> int:
    """Forget stories past the window and tombstone them; returns how many."""
    futures = [await producer.send(topic, None, key=article_id.encode())
               for article_id in list(index.expire(now))]
    if futures:
        await asyncio.gather(*futures)
        in_metrics.SEEN.set(len(index))
    return len(futures)
