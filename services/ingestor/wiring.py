"""The ingestor's parts, built once from settings: the producer, the judge (language policy
and dedup), the intake that publishes, the seen-topic store that remembers, the fetcher.

The service (`service.py`) and the one-shot `radar ingest` (`services/cli/feeds.py`) both
build theirs here, so they judge, dedup and publish alike; the service adds its doors
(HTTP, folder, feeds, inbox) around it. Building does no I/O: `open()` connects.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from services.ingestor.documents import parse_off_loop
from services.ingestor.fetch import FetchPolicy, SafeFetcher
from services.ingestor.publish import Intake, ItemResult, Judge
from services.ingestor.seen import SeenStore
from shared.kafka import ensure_topics, make_producer
from shared.settings import IngestorSettings, KafkaSettings, TopicSettings

SERVICE = "ingestor"


@dataclass
class Ingestor:
    """One intake of news, with what every door shares."""

    settings: IngestorSettings
    kafka: KafkaSettings
    topics: TopicSettings
    producer: AIOKafkaProducer
    intake: Intake
    seen: SeenStore
    fetcher: SafeFetcher
    #: True once the seen topic is replayed: until then a story could pass as new.
    ready: bool = False

    @classmethod
    def from_settings(cls, settings: IngestorSettings, kafka: KafkaSettings,
                      topics: TopicSettings, *, name: str = SERVICE) -> Ingestor:
        """`name` labels the Kafka clients (radar-<name>) and the produced-records metric."""
        producer = make_producer(kafka, client_id=f"radar-{name}")
        judge = Judge.from_settings(settings)
        return cls(settings, kafka, topics, producer,
                   Intake(producer, judge, articles_topic=topics.articles,
                          seen_topic=topics.seen, service=name),
                   SeenStore(kafka, topics.seen, judge.index, client_id=f"radar-{name}-seen"),
                   SafeFetcher(FetchPolicy.from_settings(settings)))

    @property
    def judge(self) -> Judge:
        return self.intake.judge

    async def open(self) -> None:
        """Make sure the ingestor's topics exist, and connect the producer."""
        await ensure_topics(self.kafka, self.topics, self.topics.created_by(SERVICE))
        await self.producer.start()

    async def remember(self) -> int:
        """Replay the seen topic into the dedup memory; then the ingestor is ready."""
        records = await self.seen.replay()
        self.ready = True
        return records

    async def close(self) -> None:
        self.ready = False
        await self.seen.stop()
        await self.fetcher.aclose()
        await self.producer.stop()

    async def take_document(self, data: bytes, *, name: str, default_source: str,
                            channel: str, url: str | None = None) -> list[ItemResult]:
        items = await parse_off_loop(data, name=name, default_source=default_source, url=url)
        return await self.intake.take(items, channel)

    async def take_url(self, url: str, *, channel: str,
                       default_source: str | None = None) -> list[ItemResult]:
        """Fetch (checked: see fetch.py) and ingest a page or feed; FetchError if refused."""
        fetched = await self.fetcher.fetch(url, channel=channel)
        return await self.take_document(fetched.body, name=fetched.url, url=fetched.url,
                                        default_source=default_source or "web",
                                        channel=channel)
