"""The aggregator: a Faust app whose tables hold the live alliance view.

partnerships (keyed by alliance_id) -> `alliances` table (AllianceState JSON per alliance id)
                                    -> alliances.changes.v1 when the stage changes
                                    -> alliances.state.v1 (full state after each change)
                                    -> <app id>-company-index (one CompanyLink per party,
                                       keyed by company) -> `companies` table
The HTTP API (`api.py`) answers from both tables on the Faust web server. This module is
only the Kafka wiring; the rules are in `state.py` and `index.py`.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from services.aggregator import metrics as agg_metrics
from services.aggregator.index import (
    CompanyIndex,
    CompanyLink,
    add_link,
    index_changed,
    index_topic_name,
    links_for,
)
from services.aggregator.routing import partition_for
from services.aggregator.state import Rules, apply
from shared import metrics
from shared.contracts import AllianceState, PartnershipEvent
from shared.faust_app import make_app
from shared.kafka import Rejected, decode, make_dead_letter
from shared.settings import AggregatorSettings, kafka, load, topics

log = logging.getLogger(__name__)
SERVICE = "aggregator"

settings = load(AggregatorSettings)
_topics = topics()
rules = Rules(history_limit=settings.history_limit,
              observation_limit=settings.observation_limit,
              episode_gap_days=settings.episode_gap_days)

# Faust's own /graph (a debug PNG of its services) would shadow the alliance graph; its
# /table and /router pages dump raw table contents and assignments, which the query API
# answers properly (and nothing here uses them): off.
app = make_app(settings.app_id, kafka=kafka(), topics=_topics, host=settings.host,
               port=settings.port, data_dir=settings.data_dir,
               advertised_host=settings.advertised_host, web_graph_enabled=False,
               web_tables_enabled=False, web_router_enabled=False)
# Faust's sensor serves /metrics from the default registry, which also holds ours.
setup_prometheus_sensors(app, pattern="/metrics", name_prefix="radar_faust")


def _raw_topic(name: str, **kw: Any) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **kw)


partnerships_topic = _raw_topic(_topics.partnerships)
changes_topic = _raw_topic(_topics.changes)
state_topic = _raw_topic(_topics.state, compacting=True)
dlq_topic = _raw_topic(_topics.dlq(_topics.partnerships))
# Internal (created by Faust, named after the app id): the company index, keyed by company.
index_topic = _raw_topic(index_topic_name(settings.app_id), internal=True,
                         partitions=_topics.partitions)

# bytes keys and values pass through Faust's codecs untouched: values are pydantic JSON.
alliances = app.Table("alliances", key_type=bytes, value_type=bytes,
                      partitions=_topics.partitions)
companies = app.Table("companies", key_type=bytes, value_type=bytes,
                      partitions=_topics.partitions)


def load_state(raw: bytes | None) -> AllianceState | None:
    return AllianceState.model_validate_json(raw) if raw else None


def load_index(raw: bytes | None) -> CompanyIndex | None:
    return CompanyIndex.model_validate_json(raw) if raw else None


def key_partition(key: bytes) -> int:
    """The partition of `key` in every topic and table of this app (all co-partitioned)."""
    return partition_for(key, _topics.partitions)


async def _dead_letter(event: faust.EventT, rejected: Rejected) -> None:
    msg = event.message
    log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset,
                rejected.error)
    metrics.PIPELINE.dlq.labels(SERVICE, msg.topic, rejected.reason).inc()
    if not settings.publish:
        return
    letter = make_dead_letter(SERVICE, topic=msg.topic, partition=msg.partition,
                              offset=msg.offset, key=event.key, value=event.value,
                              rejected=rejected)
    await dlq_topic.send(key=letter.key(), value=letter.to_bytes())


def _check_placement(event: faust.EventT,
                     result: PartnershipEvent | CompanyLink) -> Rejected | None:
    """The record must sit where its key hashes to: the table shard and the query router
    both assume it (a key written to another partition would be answered by a worker that
    does not hold it)."""
    key = result.key()
    if event.key != key:
        what = "alliance id" if isinstance(result, PartnershipEvent) else "company key"
        return Rejected("wrong_key", f"record key {event.key!r} is not the {what} {key!r}")
    expected = key_partition(key)
    if event.message.partition != expected:
        return Rejected("wrong_partition", f"alliance {key!r} belongs in partition "
                        f"{expected}, not {event.message.partition}")
    return None


@app.agent(partnerships_topic)
async def aggregate(stream: faust.StreamT) -> None:
    async for event in stream.events():
        metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
        result = decode(PartnershipEvent, event.value)
        if isinstance(result, Rejected):
            await _dead_letter(event, result)
            continue
        misplaced = _check_placement(event, result)
        if misplaced is not None:
            await _dead_letter(event, misplaced)
            continue
        key = result.key()
        try:
            previous = load_state(alliances.get(key))
            new, change = apply(previous, result, rules)
        except Exception as exc:  # a poison record must not stop the agent
            log.exception("aggregation failed")
            await _dead_letter(event, Rejected("processing_error", repr(exc)))
            continue
        if new is None:
            agg_metrics.DUPLICATES.inc()
            continue
        # Everything goes out before the table write: a crash in between re-delivers the
        # event and re-emits the same change_id (consumers dedup) and the same links (the
        # index ignores them), never loses them.
        if change is not None:
            if settings.publish:
                await changes_topic.send(key=key, value=change.to_bytes())
                await state_topic.send(key=key, value=new.to_bytes())
                metrics.PIPELINE.produced.labels(SERVICE, _topics.changes).inc()
                metrics.PIPELINE.produced.labels(SERVICE, _topics.state).inc()
            agg_metrics.record_change(change, previous, result.ingested_at)
        if index_changed(previous, new):
            for link in links_for(new, source_offset=event.message.offset):
                await index_topic.send(key=link.key(), value=link.to_bytes())
        alliances[key] = new.to_bytes()


@app.agent(index_topic)
async def index_companies(stream: faust.StreamT) -> None:
    """Second stage of the repartition: the worker owning a company's partition updates it."""
    async for event in stream.events():
        metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
        # Only our own agent writes here, but anyone with access to the broker can: a bad
        # record is dead-lettered (with the partnerships' dead letters, naming this topic)
        # rather than crashing the agent or landing in a shard no query reaches.
        link = decode(CompanyLink, event.value)
        if isinstance(link, Rejected):
            await _dead_letter(event, link)
            continue
        misplaced = _check_placement(event, link)
        if misplaced is not None:
            await _dead_letter(event, misplaced)
            continue
        try:
            updated = add_link(load_index(companies.get(event.key)), link)
        except Exception as exc:
            log.exception("company index update failed")
            await _dead_letter(event, Rejected("processing_error", repr(exc)))
            continue
        if updated is not None:
            companies[event.key] = updated.to_bytes()


def active_partitions(table: faust.Table) -> set[int]:
    """Partitions of `table` this worker owns (standby copies excluded)."""
    topic = table.changelog_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def local_states() -> list[AllianceState]:
    """The alliances of this worker's active partitions. The in-memory store also holds
    standby copies and keys of partitions that moved away; those are other workers' to
    answer."""
    owned = active_partitions(alliances)
    out = []
    for key, raw in list(alliances.items()):
        if raw and key_partition(key) in owned:
            out.append(AllianceState.model_validate_json(raw))
    return out


@app.timer(interval=5.0)
async def refresh_gauges() -> None:
    if not app.rebalancing:
        agg_metrics.refresh(local_states())
