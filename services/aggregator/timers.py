"""The aggregator's periodic work, registered on the app by `register`: the stall check that
/health reads, and the gauges of this worker's share of the view."""

from __future__ import annotations

import time

from services.aggregator import metrics as agg_metrics
from services.aggregator.wiring import SERVICE, Aggregator
from shared import metrics


def register(agg: Aggregator) -> None:
    app = agg.app

    @app.timer(interval=2.0)
    async def watch_progress() -> None:
        await observe_progress(agg)

    @app.timer(interval=5.0)
    async def refresh_gauges() -> None:
        if not app.rebalancing:
            agg_metrics.refresh(*agg.tables.view_counts())


async def observe_progress(agg: Aggregator) -> None:
    """Feed the stall check of /health: committed and end offsets of the input partitions
    (partnerships, company index) this worker is assigned."""
    app, progress = agg.app, agg.progress
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        progress.keep_only(set())  # a rebalance moves partitions: start the clocks again
        return
    inputs = {agg.topics.partnerships, agg.channels.company_index.get_topic_name()}
    assigned = {tp for tp in app.consumer.assignment() if tp.topic in inputs}
    ends = await app.consumer.highwaters(*assigned) if assigned else {}
    # The consumer's view of the committed offsets: read from the broker at every
    # assignment (perform_seek), then updated by each commit.
    committed = app.consumer._committed_offset
    now = time.monotonic()
    progress.keep_only({(tp.topic, tp.partition) for tp in assigned})
    for tp in assigned:
        position = await app.consumer.position(tp)
        progress.observe(tp.topic, tp.partition, committed.get(tp), ends.get(tp), now,
                         position)
    metrics.PIPELINE.stalled.labels(SERVICE).set(len(progress.stalls(now)))
