"""Ingestor metrics: what came in, from where, and what became of it."""

from __future__ import annotations

from prometheus_client import Counter

ARTICLES = Counter("radar_ingestor_articles_total",
                   "Input items by channel and outcome (published, rejected).",
                   ["channel", "outcome"])
REJECTED = Counter("radar_ingestor_rejected_total", "Rejected input items by reason.",
                   ["channel", "reason"])
BYTES = Counter("radar_ingestor_bytes_total", "Bytes of input received, by channel.",
                ["channel"])
