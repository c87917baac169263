"""Publish parsed input as ArticleEvents; shared by the ingestor service and `radar ingest`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from services.ingestor import metrics as in_metrics
from services.ingestor.sources import InputError, Parsed
from shared import metrics
from shared.contracts import ArticleEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemResult:
    where: str
    status: str  # accepted | rejected
    article_id: str | None = None
    reason: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class ArticlePublisher:
    """Sends articles keyed by article_id; waits for acks so an accepted item is durable."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, service: str = "ingestor"):
        self.producer = producer
        self.topic = topic
        self.service = service

    async def publish(self, items: Iterable[Parsed], channel: str) -> list[ItemResult]:
        results: list[ItemResult] = []
        pending: list[tuple[ArticleEvent, asyncio.Future]] = []
        for item in items:
            if isinstance(item, InputError):
                log.warning("rejected %s", item)
                in_metrics.REJECTED.labels(channel, item.reason).inc()
                in_metrics.ARTICLES.labels(channel, "rejected").inc()
                results.append(ItemResult(item.where, "rejected", reason=item.reason,
                                          error=item.message))
                continue
            future = await self.producer.send(self.topic, item.to_bytes(), key=item.key())
            pending.append((item, future))
            results.append(ItemResult(item.article_id, "accepted", article_id=item.article_id))
        if pending:
            await asyncio.gather(*(f for _, f in pending))
            metrics.PIPELINE.produced.labels(self.service, self.topic).inc(len(pending))
            in_metrics.ARTICLES.labels(channel, "published").inc(len(pending))
        return results
