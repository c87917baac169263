"""Extractor-only throughput against a plain full parse of the same texts, in process."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.corpus import Article
from bench.stats import rate, words
from shared.contracts import ArticleEvent


@dataclass(frozen=True)
class ExtractionFigures:
    articles: int
    words: int
    extractor_seconds: float
    full_parse_seconds: float
    articles_with_events: int

    @property
    def extractor_articles_per_s(self) -> float:
        return rate(self.articles, self.extractor_seconds)

    @property
    def full_parse_articles_per_s(self) -> float:
        return rate(self.articles, self.full_parse_seconds)

    @property
    def extractor_words_per_s(self) -> float:
        return rate(self.words, self.extractor_seconds)

    @property
    def full_parse_words_per_s(self) -> float:
        return rate(self.words, self.full_parse_seconds)

    @property
    def speedup(self) -> float:
        """How many times faster the extractor gets through the texts than a full parse."""
        return rate(self.full_parse_seconds, self.extractor_seconds)


def as_events(articles: list[Article]) -> list[ArticleEvent]:
    now = datetime.now(UTC)
    return [ArticleEvent(article_id=a.id, title=a.title, text=a.text, source=a.source,
                         published_at=a.published_at, fetched_at=now) for a in articles]


def measure(articles: list[Article], model: str, batch_size: int = 32,
            profile: bool = False) -> tuple[ExtractionFigures, str]:
    """Time `Extractor.extract_many` over the articles in batches of `batch_size` (as the
    service does), then `nlp.pipe` of the plain model over the same texts. Model loading is
    not timed. With `profile`, also returns cProfile's top functions of the extractor run."""
    import spacy

    from services.extractor.pipeline import Extractor

    events = as_events(articles)
    extractor = Extractor.load(model)
    extractor.extract_many(events[:8])  # first-call allocations out of the timing
    profiler = cProfile.Profile() if profile else None
    found = 0
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(0, len(events), batch_size):
        found += sum(1 for r in extractor.extract_many(events[i:i + batch_size]) if r)
    if profiler:
        profiler.disable()
    extractor_seconds = time.perf_counter() - started
    del extractor

    nlp = spacy.load(model)
    texts = [a.text for a in articles]
    list(nlp.pipe(texts[:8]))
    started = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass
    full_seconds = time.perf_counter() - started

    report = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        report = out.getvalue()
    return ExtractionFigures(len(articles), words(texts), extractor_seconds, full_seconds,
                             found), report
