"""Entry point of the aggregator worker."""

from __future__ import annotations

import asyncio

from shared import logs
from shared.kafka import ensure_topics
from shared.settings import kafka, topics


def main() -> None:
    logs.setup("aggregator")
    t = topics()
    # Output topics exist before the first change, so consumers can subscribe at once.
    asyncio.run(ensure_topics(kafka(), t, [t.partnerships, t.changes, t.state,
                                           t.dlq(t.partnerships)], compacted=[t.state]))
    import faust

    from services.aggregator.api import app  # the API module registers its pages on the app

    worker = faust.Worker(app, loglevel=logs.level(), override_logging=False)
    worker.execute_from_commandline()
