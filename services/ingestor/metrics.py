"""Ingestor metrics: what came in, through which channel, and what became of it.

Labels are bounded: `channel` is one of http, file, folder, stdin, feed, page, inbox, cli;
`feed` is a name from the operator's feeds file; reasons and outcomes are fixed vocabularies.
Sources named inside the input (an item's `source`) are never labels: strangers choose them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ARTICLES = Counter("radar_ingestor_articles_total",
                   "Input items by channel and outcome (published, duplicate, near_duplicate, "
                   "non_english, rejected).", ["channel", "outcome"])
REJECTED = Counter("radar_ingestor_rejected_total", "Rejected input items and requests by "
                   "reason.", ["channel", "reason"])
BYTES = Counter("radar_ingestor_received_bytes_total", "Bytes of input received (bodies, "
                "files, stdin, inbox), by channel.", ["channel"])
FETCHED_BYTES = Counter("radar_ingestor_fetched_bytes_total", "Bytes downloaded from URLs "
                        "(on the wire), by channel.", ["channel"])
FETCH_ERRORS = Counter("radar_ingestor_fetch_errors_total", "URL fetches refused or failed, by "
                       "reason (forbidden_address, too_large, timeout, http_status, ...).",
                       ["channel", "reason"])
FEED_POLLS = Counter("radar_ingestor_feed_polls_total", "Feed polls by result (new, "
                     "unchanged, not_modified, error).", ["feed", "result"])
FEED_ERRORS = Counter("radar_ingestor_feed_errors_total", "Failed feed polls by reason.",
                      ["feed", "reason"])
FEED_POLL_SECONDS = Histogram("radar_ingestor_feed_poll_seconds", "Duration of one feed poll "
                              "(fetch and parse).", ["feed"],
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
FEEDS = Gauge("radar_ingestor_feeds", "Feeds currently configured.")
FEED_FAILURES = Gauge("radar_ingestor_feed_consecutive_failures", "Consecutive failed polls "
                      "of a feed (drives its backoff).", ["feed"])
FULL_TEXT = Counter("radar_ingestor_full_text_total", "New items of full-text feeds by what "
                    "fetching their page gave: full_text, or why the summary was kept "
                    "(robots_disallowed, no_link, no_article_text, not_longer, a fetch "
                    "refusal reason).", ["feed", "result"])
SEEN = Gauge("radar_ingestor_seen_articles", "Stories in the dedup window.")
SEEN_REPLAYED = Counter("radar_ingestor_seen_replayed_total", "news.seen.v1 records read "
                        "(start-up replay and live tail), by result (applied, tombstone, "
                        "expired, or the rejection reason: invalid_json, schema_violation).",
                        ["result"])
