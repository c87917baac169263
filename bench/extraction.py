"""Extractor-only throughput against a plain full parse of the same texts, in process, and
the extractor pool (worker processes) over the same texts.

Each repeat times the extractor and then the full parse back to back, so the ratio of one
repeat is measured under the same machine load on both sides; the figures are the medians
of the repeats with min and max.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.corpus import Article
from bench.stats import rate, words
from shared.contracts import ArticleEvent


@dataclass
class ExtractionFigures:
    articles: int
    words: int
    articles_with_events: int = 0
    extractor_seconds: list[float] = field(default_factory=list)
    full_parse_seconds: list[float] = field(default_factory=list)
    pool_seconds: list[float] = field(default_factory=list)
    pool_processes: int = 0

    def per_s(self, seconds: list[float], of_words: bool = False) -> list[float]:
        return [rate(self.words if of_words else self.articles, s) for s in seconds]

    @property
    def extractor_articles_per_s(self) -> list[float]:
        return self.per_s(self.extractor_seconds)

    @property
    def full_parse_articles_per_s(self) -> list[float]:
        return self.per_s(self.full_parse_seconds)

    @property
    def pool_articles_per_s(self) -> list[float]:
        return self.per_s(self.pool_seconds)

    @property
    def speedups(self) -> list[float]:
        """Per repeat: how many times faster the extractor gets through the texts than a
        full parse measured right after it."""
        return [rate(full, ex) for ex, full in
                zip(self.extractor_seconds, self.full_parse_seconds, strict=True)]


def as_events(articles: list[Article]) -> list[ArticleEvent]:
    now = datetime.now(UTC)
    return [ArticleEvent(article_id=a.id, title=a.title, text=a.text, source=a.source,
                         published_at=a.published_at, fetched_at=now) for a in articles]


def measure(articles: list[Article], model: str, batch_size: int = 32, repeats: int = 3,
            pool_processes: int | None = None, profile: bool = False
            ) -> tuple[ExtractionFigures, str]:
    """`repeats` times: `Extractor.extract_many` over the articles in batches of
    `batch_size` (as the service does), then `nlp.pipe` of the plain model over the same
    texts; then the extractor pool (`pool_processes`, default one per core) over them, as
    many times. Model loading is not timed. With `profile`, also returns cProfile's top
    functions of the first extractor run."""
    import spacy

    from services.extractor.pipeline import Extractor
    from services.extractor.workers import ExtractorPool, PipelineSpec

    events = as_events(articles)
    texts = [a.text for a in articles]
    figures = ExtractionFigures(len(articles), words(texts))
    extractor = Extractor.load(model)
    nlp = spacy.load(model)
    extractor.extract_many(events[:8])  # first-call allocations out of the timing
    list(nlp.pipe(texts[:8]))
    report = ""
    for repeat in range(repeats):
        profiler = cProfile.Profile() if profile and repeat == 0 else None
        found = 0
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        for i in range(0, len(events), batch_size):
            found += sum(1 for r in extractor.extract_many(events[i:i + batch_size]) if r)
        if profiler:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            report = out.getvalue()
        figures.extractor_seconds.append(time.perf_counter() - started)
        figures.articles_with_events = found
        started = time.perf_counter()
        for _ in nlp.pipe(texts, batch_size=batch_size):
            pass
        figures.full_parse_seconds.append(time.perf_counter() - started)
    del extractor, nlp

    with ExtractorPool(PipelineSpec(model), pool_processes) as pool:
        figures.pool_processes = pool.processes
        pool.extract_sync(events[:8])
        for _ in range(repeats):
            started = time.perf_counter()
            for i in range(0, len(events), batch_size):
                pool.extract_sync(events[i:i + batch_size])
            figures.pool_seconds.append(time.perf_counter() - started)
    return figures, report
