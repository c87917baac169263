"""The aggregator's app factory (Faust's medium/large project layout): a Faust app whose
tables hold the live alliance view, with its parts registered from their own modules.

    agents.py   the alliance agent and the company-index agent (`register`)
    timers.py   the stall check and the view's gauges (`register`)
    views.py    the query API and /health (`register`)
    webhooks.py the webhook dispatcher (`register`; off without webhook settings)
    wiring.py   what the parts share: topics, tables, rules, change fence, stall watch
    tables.py   the `alliances` and `companies` tables and their readers

Settings are passed in; importing this module (or any other of the aggregator) reads no
environment and builds nothing. `service.py` reads the settings and runs the worker.
Adding an agent, a timer or a web view is a module with a `register(aggregator)` function,
named in `PARTS`.
"""

from __future__ import annotations

from collections.abc import Callable

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from services.aggregator import agents, timers, views, webhooks
from services.aggregator.wiring import Aggregator
from shared.faust_app import make_app
from shared.metrics import install_expect_handler
from shared.settings import (
    AggregatorSettings,
    AuthSettings,
    KafkaSettings,
    TopicSettings,
    WebhookSettings,
)

#: Each part adds its agents, timers or views to the app.
PARTS: tuple[Callable[[Aggregator], None], ...] = (agents.register, timers.register,
                                                   views.register, webhooks.register)


def create_app(settings: AggregatorSettings, kafka: KafkaSettings, topics: TopicSettings,
               auth: AuthSettings, webhooks: WebhookSettings | None = None) -> faust.App:
    """One aggregator worker's Faust app, every part registered."""
    install_expect_handler()
    # Faust's own /graph (a debug PNG of its services) would shadow the alliance graph; its
    # /table and /router pages dump raw table contents and assignments, which the query API
    # answers properly (and nothing here uses them): off.
    app = make_app(settings.app_id, kafka=kafka, topics=topics, host=settings.host,
                   port=settings.port, data_dir=settings.data_dir,
                   advertised_host=settings.advertised_host, web_graph_enabled=False,
                   web_tables_enabled=False, web_router_enabled=False)
    # Faust's sensor serves /metrics from the default registry, which also holds ours.
    setup_prometheus_sensors(app, pattern="/metrics", name_prefix="radar_faust")
    aggregator = Aggregator.define(app, settings, kafka, topics, auth, webhooks)
    for register in PARTS:
        register(aggregator)
    return app
