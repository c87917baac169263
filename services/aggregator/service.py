"""Entry point of the aggregator worker: read the settings, make sure the topics exist,
build the app (`app.create_app`) and run it."""

from __future__ import annotations

import asyncio

import faust

from services.aggregator.app import create_app
from services.aggregator.wiring import SERVICE
from shared import logs
from shared.kafka import ensure_topics
from shared.settings import AggregatorSettings, WebhookSettings, auth, kafka, load, topics


def main() -> None:
    logs.setup(SERVICE)
    settings, k, t = load(AggregatorSettings), kafka(), topics()
    # Output topics exist before the first change, so consumers can subscribe at once.
    asyncio.run(ensure_topics(k, t, t.created_by(SERVICE)))
    app = create_app(settings, k, t, auth(), load(WebhookSettings))
    worker = faust.Worker(app, loglevel=logs.level(), override_logging=False)
    worker.execute_from_commandline()
