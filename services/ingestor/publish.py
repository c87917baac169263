"""From parsed input to published ArticleEvents: the one path every channel takes.

`Intake` judges each item (rejected, other language, duplicate, near duplicate, new), then
publishes the new ones and records them on `news.seen.v1` so the judgement survives a
restart. Judging is pure and synchronous, so two batches arriving together cannot both
publish the same story. Used by the service (HTTP, folder, feeds, inbox) and `radar ingest`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from services.ingestor import metrics as in_metrics
from services.ingestor.dedup import Fingerprint, Outcome, SeenIndex
from services.ingestor.language import LanguagePolicy
from services.ingestor.sources import InputError, Parsed
from shared import metrics
from shared.contracts import ArticleEvent, SeenArticle, utcnow
from shared.settings import IngestorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemResult:
    """What became of one input item (the HTTP answer lists one per item)."""

    where: str
    status: str  # an Outcome value
    article_id: str | None = None
    reason: str | None = None
    error: str | None = None
    duplicate_of: str | None = None
    similarity: float | None = None
    language: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def summary(results: list[ItemResult]) -> dict[str, int]:
    """Counts per status, plus `accepted` (taken in, whatever the outcome) and `rejected`."""
    counts = Counter(r.status for r in results)
    return {"accepted": len(results) - counts[Outcome.REJECTED],
            "rejected": counts[Outcome.REJECTED],
            **{o.value: counts[o.value] for o in Outcome if o is not Outcome.REJECTED}}


@dataclass(frozen=True)
class Verdict:
    result: ItemResult
    article: ArticleEvent | None = None  # set when it is to be published
    seen: SeenArticle | None = None


@dataclass(frozen=True)
class Prepared:
    """An item with its language settled and its fingerprint computed."""

    item: Parsed
    fingerprint: Fingerprint | None = None
    language_allowed: bool = True


@dataclass
class Judge:
    """Language policy and dedup, without Kafka. `decide` marks new stories as seen at once
    (so a second copy in the same or a concurrent batch is a duplicate); `forget` undoes
    that when publishing fails."""

    index: SeenIndex
    policy: LanguagePolicy
    min_words: int = 20
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_settings(cls, settings: IngestorSettings) -> Judge:
        return cls(SeenIndex(timedelta(hours=settings.dedup_window_hours),
                             settings.near_duplicate_threshold),
                   LanguagePolicy(settings.allowed_languages, settings.language_min_confidence),
                   settings.near_duplicate_min_words)

    def prepare(self, item: Parsed) -> Prepared:
        """The costly, pure part (language detection, MinHash): safe in a worker thread."""
        if isinstance(item, InputError):
            return Prepared(item)
        verdict = self.policy.judge(f"{item.title}\n\n{item.text}", item.language or None)
        article = item.model_copy(update={"language": verdict.language})
        if not verdict.allowed:
            return Prepared(article, language_allowed=False)
        return Prepared(article, Fingerprint.of(article, self.min_words))

    def decide(self, item: Parsed | Prepared) -> Verdict:
        """The verdict on one item; a new story is marked seen at once. Cheap and
        synchronous: call it from one thread (the event loop)."""
        prepared = item if isinstance(item, Prepared) else self.prepare(item)
        parsed = prepared.item
        if isinstance(parsed, InputError):
            return Verdict(ItemResult(parsed.where, Outcome.REJECTED, reason=parsed.reason,
                                      error=parsed.message))
        if not prepared.language_allowed or prepared.fingerprint is None:
            return Verdict(ItemResult(parsed.article_id, Outcome.NON_ENGLISH,
                                      article_id=parsed.article_id, language=parsed.language))
        now = self.clock()
        match = self.index.check(prepared.fingerprint, now)
        if match is not None:
            similarity = round(match.similarity, 3) if match.outcome is \
                Outcome.NEAR_DUPLICATE else None
            return Verdict(ItemResult(parsed.article_id, match.outcome,
                                      article_id=parsed.article_id, duplicate_of=match.of,
                                      similarity=similarity))
        self.index.add(prepared.fingerprint, now)
        return Verdict(ItemResult(parsed.article_id, Outcome.PUBLISHED,
                                  article_id=parsed.article_id, language=parsed.language),
                       article=parsed, seen=prepared.fingerprint.record(parsed.source, now))

    def forget(self, verdicts: Iterable[Verdict]) -> None:
        for verdict in verdicts:
            if verdict.article is not None:
                self.index.remove(verdict.article.article_id)


class Intake:
    """Judge, publish the new stories, then record them on the seen topic.

    Articles are acknowledged before their seen records are sent: a crash in between can
    republish a story after a restart (consumers are idempotent), never lose one.
    """

    def __init__(self, producer: AIOKafkaProducer, judge: Judge, *, articles_topic: str,
                 seen_topic: str, service: str = "ingestor") -> None:
        self.producer = producer
        self.judge = judge
        self.articles_topic = articles_topic
        self.seen_topic = seen_topic
        self.service = service

    async def take(self, items: Iterable[Parsed], channel: str) -> list[ItemResult]:
        items = list(items)
        # Detection and MinHash off the event loop (a 5 MB batch takes seconds); the
        # verdicts themselves on it, one at a time.
        prepared = await asyncio.to_thread(lambda: [self.judge.prepare(i) for i in items]) \
            if len(items) > 4 else [self.judge.prepare(i) for i in items]
        verdicts = [self.judge.decide(p) for p in prepared]
        new = [v for v in verdicts if v.article is not None]
        try:
            await self._send(self.articles_topic, [v.article for v in new])  # type: ignore[misc]
        except BaseException:
            self.judge.forget(new)
            raise
        await self._send(self.seen_topic, [v.seen for v in new])  # type: ignore[misc]
        for verdict in verdicts:
            result = verdict.result
            if result.status == Outcome.REJECTED:
                in_metrics.REJECTED.labels(channel, result.reason).inc()
            in_metrics.ARTICLES.labels(channel, result.status).inc()
        in_metrics.SEEN.set(len(self.judge.index))
        if verdicts:
            counts = summary([v.result for v in verdicts])
            log.info("%s: %s", channel, ", ".join(f"{k} {n}" for k, n in counts.items() if n))
        return [v.result for v in verdicts]

    async def _send(self, topic: str, messages: list[ArticleEvent | SeenArticle]) -> None:
        if not messages:
            return
        futures = [await self.producer.send(topic, m.to_bytes(), key=m.key()) for m in messages]
        await asyncio.gather(*futures)
        metrics.PIPELINE.produced.labels(self.service, topic).inc(len(messages))
