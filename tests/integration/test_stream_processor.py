"""The shared consume -> handle -> produce -> commit loop on the real broker, with several
polls in hand (the extractor runs one per worker process): a record that arrives while an
earlier one is still being handled is handled and published at once, yet offsets are
committed in poll order, so a crash can only re-deliver, never skip, the slow record."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from shared.contracts import ArticleEvent, Contract, DeadLetter
from shared.kafka import Outgoing, Processed, StreamProcessor
from tests.helpers import TopicReader, async_wait_until, kafka_settings, produce, valid


def article(article_id: str) -> ArticleEvent:
    return ArticleEvent(article_id=article_id, title=article_id, text=f"{article_id} text",
                        published_at=datetime(2026, 12, 3, tzinfo=UTC))


class HeldHandler:
    """Echoes each article to `out`; an article called `slow` waits for `release`."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.slow_started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, messages: list[Contract]) -> list[Processed]:
        for message in messages:
            assert isinstance(message, ArticleEvent)
            if message.article_id == "slow":
                self.slow_started.set()
                await self.release.wait()
        return [Processed(outputs=[Outgoing(self.out, m)]) for m in messages]


async def test_a_later_record_is_published_while_a_slow_one_is_handled_and_commits_wait(
        bootstrap: str) -> None:
    name = f"sp-{uuid.uuid4().hex[:8]}"
    source, out = f"{name}.in", f"{name}.out"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # one partition: the fast record sits behind the slow one
        await admin.create_topics([NewTopic(t, 1, 1) for t in (source, out, f"{source}.dlq")])
    finally:
        await admin.close()
    handler = HeldHandler(out)
    processor = StreamProcessor(service="t", kafka=kafka_settings(bootstrap),
                                input_topic=source, model=ArticleEvent,
                                group_id=f"{name}-group", handler=handler, batch_size=1,
                                concurrency=2)
    tp = TopicPartition(source, 0)
    stop = asyncio.Event()
    await processor.start()
    running = asyncio.create_task(processor.run(stop))
    try:
        await produce(bootstrap, source, [(b"slow", article("slow").to_bytes())])
        await asyncio.wait_for(handler.slow_started.wait(), 30)
        await produce(bootstrap, source, [(b"junk", b"{not an article"),
                                          (b"fast", article("fast").to_bytes())])
        async with TopicReader(bootstrap, out) as published, \
                TopicReader(bootstrap, f"{source}.dlq") as dead:
            await published.wait_for(
                lambda rs: "fast" in {a.article_id for a in valid(rs, ArticleEvent)}, 30,
                "the fast article published while the slow one is held")
            await dead.wait_for(lambda rs: len(valid(rs, DeadLetter)) == 1, 30,
                                "the junk record dead-lettered while the slow one is held")
            assert "slow" not in {a.article_id for a in valid(published.records, ArticleEvent)}
            # Nothing past the held record is committed: a crash now re-delivers it.
            assert (await processor.consumer.committed(tp) or 0) == 0

            handler.release.set()
            await published.wait_for(
                lambda rs: "slow" in {a.article_id for a in valid(rs, ArticleEvent)}, 30,
                "the slow article published once released")

        async def all_committed() -> bool:
            return await processor.consumer.committed(tp) == 3

        await async_wait_until(all_committed, 30, 0.05, "every offset committed")
    finally:
        stop.set()
        handler.release.set()
        await asyncio.wait_for(running, 30)
        await processor.stop()
