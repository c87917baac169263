"""What the aggregator's agents, timers and web views share, made once per app by the app
factory (`app.py`) from injected settings: the Faust topics, the tables, the stage rules,
the change fence and the stall watch. Nothing here runs at import.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust

from services.aggregator.fence import ChangeFence
from services.aggregator.index import index_topic_name
from services.aggregator.state import Rules
from services.aggregator.tables import Tables
from shared.progress import ProgressWatch
from shared.settings import (
    AggregatorSettings,
    AuthSettings,
    KafkaSettings,
    TopicSettings,
    WebhookSettings,
)
from shared.topics import dlq

SERVICE = "aggregator"


@dataclass(frozen=True)
class Channels:
    """The Faust topics of one aggregator app: raw bytes in and out (values are pydantic
    JSON, decoded by the agents so that a bad record becomes a dead letter)."""

    partnerships: faust.TopicT
    changes: faust.TopicT
    state: faust.TopicT
    dead_letters: faust.TopicT
    #: Internal (created by Faust, named after the app id): the company index, keyed by
    #: company.
    company_index: faust.TopicT

    @classmethod
    def define(cls, app: faust.App, topics: TopicSettings, app_id: str) -> Channels:
        def raw(name: str, **kw: Any) -> faust.TopicT:
            return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                             value_serializer="raw", **kw)

        return cls(partnerships=raw(topics.partnerships), changes=raw(topics.changes),
                   state=raw(topics.state, compacting=True),
                   dead_letters=raw(dlq(topics.partnerships)),
                   company_index=raw(index_topic_name(app_id), internal=True,
                                     partitions=topics.partitions))


@dataclass(frozen=True)
class Aggregator:
    """One aggregator app and everything its parts need."""

    app: faust.App
    settings: AggregatorSettings
    kafka: KafkaSettings
    topics: TopicSettings
    auth: AuthSettings
    rules: Rules
    channels: Channels
    tables: Tables
    fence: ChangeFence
    progress: ProgressWatch
    #: None: no webhook dispatcher in this worker.
    webhooks: WebhookSettings | None = None
    #: The change-stream connections open now (`stream.py`), ended when the worker stops.
    open_streams: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def define(cls, app: faust.App, settings: AggregatorSettings, kafka: KafkaSettings,
               topics: TopicSettings, auth: AuthSettings,
               webhooks: WebhookSettings | None = None) -> Aggregator:
        """Declare the topics and tables on `app` (no I/O: Faust connects when it starts)."""
        return cls(app, settings, kafka, topics, auth,
                   Rules(history_limit=settings.history_limit,
                         observation_limit=settings.observation_limit,
                         episode_gap_days=settings.episode_gap_days),
                   Channels.define(app, topics, settings.app_id),
                   Tables.define(app, topics.partitions, settings),
                   ChangeFence(app, kafka, topics.changes),
                   ProgressWatch(kafka.stall_after_s), webhooks)
