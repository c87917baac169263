"""Extractor metrics: what the NLP does with each article."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import LATENCY_BUCKETS

ARTICLES = Counter("radar_extractor_articles_total",
                   "Articles processed, by outcome (events, no_events, gated_out).",
                   ["outcome"])
EVENTS = Counter("radar_extractor_events_total", "Partnership events extracted, by stage.",
                 ["stage"])
SECONDS = Histogram("radar_extraction_seconds", "Extraction time per article batch, divided "
                    "per article.", buckets=LATENCY_BUCKETS)
