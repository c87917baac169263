"""The dedup memory on the real broker: Intake writes articles then seen records; a fresh
SeenStore replays them (skipping expired, invalid and tombstoned ones) and follows new ones."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from services.ingestor.dedup import Fingerprint, SeenIndex
from services.ingestor.language import LanguagePolicy
from services.ingestor.publish import Intake, Judge
from services.ingestor.seen import SeenStore, expire
from shared.contracts import ArticleEvent, utcnow
from shared.kafka import ensure_topics, make_producer
from shared.settings import TopicSettings
from tests.helpers import TopicReader, async_wait_until, kafka_settings, produce, valid


def story(n: int) -> ArticleEvent:
    return ArticleEvent(article_id=f"seen-{n}", published_at=utcnow(), title=f"Story {n}",
                        text=f"Firm{n} Holdings and Other{n} Group agreed deal {n} on a joint "
                             f"factory, the companies said.")


async def test_replay_and_follow_the_seen_topic(bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    articles, seen = f"it-seen-{run}.articles", f"it-seen-{run}.seen"
    k = kafka_settings(bootstrap)
    await ensure_topics(k, TopicSettings(), [articles, seen], compacted=[seen])
    producer = make_producer(k, client_id="it-seen")
    await producer.start()
    try:
        judge = Judge(SeenIndex(timedelta(hours=1)), LanguagePolicy())
        intake = Intake(producer, judge, articles_topic=articles, seen_topic=seen)
        results = await intake.take([story(1), story(2), story(1)], "test")
        assert [r.status for r in results] == ["published", "published", "duplicate"]
        stale = Fingerprint.of(story(3), 20).record("old", utcnow() - timedelta(hours=2))
        await produce(bootstrap, seen, [(stale.key(), stale.to_bytes()),
                                        (b"junk", b"{not a seen record"),
                                        (b"seen-2", None)])  # tombstone: forget story 2

        fresh = SeenIndex(timedelta(hours=1))
        store = SeenStore(k, seen, fresh, client_id="it-seen-replay")
        try:
            read = await store.replay()
            assert read == 5 and store.replayed  # 2 stories, stale, junk, tombstone
            assert set(fresh.entries) == {"seen-1"}
            follow = asyncio.Event()
            task = asyncio.create_task(store.follow(follow))
            again = Judge(fresh, LanguagePolicy())
            assert again.decide(story(1)).result.status == "duplicate"
            assert again.decide(story(2)).result.status == "published"  # tombstoned
            await intake.take([story(4)], "test")  # another writer, after the replay
            await async_wait_until(lambda: _ready("seen-4" in fresh.entries), 20,
                                   message="followed record")
            follow.set()
            await task
        finally:
            await store.stop()

        short = SeenIndex(timedelta(seconds=1))
        short.add(Fingerprint.of(story(5), 20), utcnow() - timedelta(seconds=5))
        assert await expire(short, producer, seen, utcnow()) == 1
    finally:
        await producer.stop()
    async with TopicReader(bootstrap, seen) as reader:
        await reader.wait_for(lambda rs: any(r.key == b"seen-5" and r.value is None
                                             for r in rs), message="tombstone")
    async with TopicReader(bootstrap, articles) as reader:
        await reader.wait_for(lambda rs: len(rs) >= 3, message="articles")
    assert sorted(a.article_id for a in valid(reader.records, ArticleEvent)) == [
        "seen-1", "seen-2", "seen-4"]


async def _ready(value: bool) -> bool:
    return value
