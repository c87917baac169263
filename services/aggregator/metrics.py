"""Aggregator domain metrics: what the alliance view holds and how it moves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shared.contracts import AllianceChange, AllianceState, Stage, utcnow

CHANGES = Counter("radar_alliance_changes_total", "Alliance changes emitted, by transition.",
                  ["from_stage", "to_stage"])
DUPLICATES = Counter("radar_duplicate_events_total",
                     "Partnership events already applied (redeliveries), ignored.")
CHANGES_NOT_RESENT = Counter("radar_changes_not_resent_total", "Changes of redelivered "
                             "records that were already on the change topic (sent before a "
                             "restart), so not sent again.")
ALLIANCES = Gauge("radar_alliances", "Alliances in the view on this worker, by stage.",
                  ["stage"])
COMPANIES = Gauge("radar_companies_tracked", "Distinct companies in the view on this worker.")
SSE_CLIENTS = Gauge("radar_sse_clients", "Clients connected to GET /changes/stream on this "
                    "worker.")
SSE_EVENTS = Counter("radar_sse_events_total", "Change events sent to change-stream clients.")
SSE_DISCONNECTS = Counter("radar_sse_disconnects_total", "Change-stream clients that left: "
                          "gone (closed the connection), slow (fell a whole queue behind and "
                          "were disconnected), error.", ["reason"])
WEBHOOK_SUBSCRIPTIONS = Gauge("radar_webhook_subscriptions", "Webhook subscriptions this "
                              "worker's dispatcher knows.")
WEBHOOK_DELIVERIES = Counter("radar_webhook_deliveries_total", "Webhook delivery outcomes per "
                             "subscription: delivered, failed_attempt (retried or last), "
                             "dead_lettered, dropped (subscription removed meanwhile).",
                             ["subscription", "result"])
WEBHOOK_RESTARTS = Counter("radar_webhook_dispatcher_restarts_total", "Times the webhook "
                           "dispatcher failed and started again from its committed offsets.")
WEBHOOK_LATENCY = Histogram("radar_webhook_delivery_seconds", "Time of one webhook delivery "
                            "attempt (POST to answer), per subscription.", ["subscription"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
END_TO_END = Histogram("radar_end_to_end_latency_seconds",
                       "From article ingest to the AllianceChange it caused.",
                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

#: How many companies `radar_company_alliances` keeps: the dashboard shows a top 10, and a
#: bounded set keeps the series count flat however many companies the news names.
TOP_COMPANIES = 20

COMPANY_ALLIANCES = Gauge("radar_company_alliances",
                          f"Alliances in this worker's view that a company is party to; only "
                          f"the {TOP_COMPANIES} companies with the most are exported.",
                          ["company"])


def set_top_companies(alliances_per_company: Mapping[str, int],
                      limit: int = TOP_COMPANIES) -> list[tuple[str, int]]:
    """Export the `limit` companies with the most alliances (ties by name, so the set is
    stable between refreshes) and drop every other company's series."""
    top = sorted(alliances_per_company.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    COMPANY_ALLIANCES.clear()
    for company, count in top:
        COMPANY_ALLIANCES.labels(company).set(count)
    return top


def record_change(change: AllianceChange, previous: AllianceState | None,
                  ingested_at=None) -> None:
    CHANGES.labels(previous.stage if previous else "new", change.stage).inc()
    if ingested_at is not None:
        END_TO_END.observe(max(0.0, (utcnow() - ingested_at).total_seconds()))


def refresh(by_stage: Mapping[str, int], companies: int, top: Iterable[Any]) -> None:
    """Gauges of this worker's share of the view (its active partitions), from its indexes:
    alliances per stage, companies, and the companies with the most alliances
    (`listing.CompanyEntry`: name and alliance count)."""
    for stage in Stage:
        ALLIANCES.labels(stage.value).set(by_stage.get(stage.value, 0))
    COMPANIES.set(companies)
    set_top_companies({entry.name: entry.alliance_count for entry in top})
