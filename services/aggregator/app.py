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
import time
from collections.abc import Awaitable, Callable
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
from shared.faust_app import ack, deliver, make_app, put_acknowledged, record_send
from shared.kafka import Rejected, decode, make_dead_letter
from shared.progress import ProgressWatch
from shared.settings import AggregatorSettings, kafka, load, topics

log = logging.getLogger(__name__)
SERVICE = "aggregator"
Send = Callable[[], Awaitable[Awaitable[Any]]]
#: Header of every AllianceChange: "<input partition>@<offset>" of the record that caused it.
SOURCE_HEADER = "radar-source"

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


def _dead_letter(event: faust.EventT, rejected: Rejected) -> list[Send]:
    """The dead-letter send for `event` (none when publishing is off)."""
    msg = event.message
    log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset,
                rejected.error)
    metrics.PIPELINE.dlq.labels(SERVICE, msg.topic, rejected.reason).inc()
    if not settings.publish:
        return []
    letter = make_dead_letter(SERVICE, topic=msg.topic, partition=msg.partition,
                              offset=msg.offset, key=event.key, value=event.value,
                              rejected=rejected)
    return [record_send(dlq_topic, letter.key(), letter.to_bytes())]


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


def _outputs(event: faust.EventT) -> tuple[list[Send], Send | None, tuple[bytes, bytes] | None]:
    """What one partnership record causes: the sends (state, index links, or a dead letter),
    the change send, and the table write, decided from the table as it is (pure but for
    metrics). The change goes to the partition of the record that caused it, marked with
    its offset (see `EmittedChanges`)."""
    metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
    result = decode(PartnershipEvent, event.value)
    if isinstance(result, Rejected):
        return _dead_letter(event, result), None, None
    misplaced = _check_placement(event, result)
    if misplaced is not None:
        return _dead_letter(event, misplaced), None, None
    key = result.key()
    try:
        previous = load_state(alliances.get(key))
        new, change = apply(previous, result, rules)
    except Exception as exc:  # a poison record must not stop the agent
        log.exception("aggregation failed")
        return _dead_letter(event, Rejected("processing_error", repr(exc))), None, None
    if new is None:
        agg_metrics.DUPLICATES.inc()
        return [], None, None
    sends: list[Send] = []
    change_send: Send | None = None
    if change is not None:
        if settings.publish:
            msg = event.message
            change_send = record_send(changes_topic, key, change.to_bytes(),
                                      partition=msg.partition,
                                      headers={SOURCE_HEADER: f"{msg.partition}@{msg.offset}"
                                               .encode()})
            sends.append(record_send(state_topic, key, new.to_bytes()))
            metrics.PIPELINE.produced.labels(SERVICE, _topics.changes).inc()
            metrics.PIPELINE.produced.labels(SERVICE, _topics.state).inc()
        agg_metrics.record_change(change, previous, result.ingested_at)
    if index_changed(previous, new):
        sends += [record_send(index_topic, link.key(), link.to_bytes())
                  for link in links_for(new, source_offset=event.message.offset)]
    return sends, change_send, (key, new.to_bytes())


class EmittedChanges:
    """Per input partition, the highest input offset whose change is on the change topic.

    The change of a record is acknowledged before its table write; a crash in between
    redelivers the record to a table without it, and the same change would go out again.
    Changes of input partition p go to partition p of the change topic, in input order,
    each marked with its source offset (header `radar-source`, "p@offset"), so after a
    (re)assignment the tail of that partition says how far changes were sent: a redelivered
    record at or below it sends its change no more. Read once per partition and rebalance.
    """

    def __init__(self) -> None:
        self._upto: dict[int, int] = {}
        self._generation: int | None = None
        self._reader: Any = None

    def record(self, partition: int, offset: int) -> None:
        self._upto[partition] = max(offset, self._upto.get(partition, -1))

    async def upto(self, partition: int) -> int:
        if self._generation != app.consumer_generation_id:
            self._upto.clear()
            self._generation = app.consumer_generation_id
        if partition not in self._upto:
            self._upto[partition] = await self._read_tail(partition)
        return self._upto[partition]

    async def _read_tail(self, partition: int, last: int = 100) -> int:
        from aiokafka.structs import TopicPartition

        from shared.kafka import make_consumer

        if self._reader is None:
            self._reader = make_consumer(kafka(), group_id=None,
                                         client_id="radar-aggregator-fence")
            await self._reader.start()
        tp = TopicPartition(_topics.changes, partition)
        self._reader.assign([tp])
        end = (await self._reader.end_offsets([tp]))[tp]
        self._reader.seek(tp, max(0, end - last))
        found = -1
        deadline = time.monotonic() + 30
        while await self._reader.position(tp) < end and time.monotonic() < deadline:
            for record in (await self._reader.getmany(tp, timeout_ms=500)).get(tp, []):
                found = max(found, _source_offset(record.headers, partition))
        return found


def _source_offset(headers: Any, partition: int) -> int:
    for name, value in headers or ():
        if name == SOURCE_HEADER:
            where, _, offset = value.decode(errors="replace").partition("@")
            if where == str(partition) and offset.isdigit():
                return int(offset)
    return -1


emitted = EmittedChanges()


@app.agent(partnerships_topic)
async def aggregate(stream: faust.StreamT) -> None:
    """One partnership record at a time: its change, state and index links acknowledged by
    the broker, then its table write acknowledged, then the record acked (so Faust commits
    its offset). A crash anywhere before the ack redelivers the record: before the table
    write, the same change is sent again (same change_id; subscribers dedup), after it, the
    event is a duplicate and changes nothing. Never a committed offset whose effects are
    missing (see `shared.faust_app.deliver`)."""
    manual = stream.noack()
    async for event in manual.events():
        time_in = app.monitor.time()
        sends, change_send, write = _outputs(event)
        msg = event.message
        if change_send is not None:
            if msg.offset <= await emitted.upto(msg.partition):
                log.info("change of %s[%s]@%s is already on %s (sent before a restart); "
                         "not sent again", msg.topic, msg.partition, msg.offset,
                         _topics.changes)
                agg_metrics.CHANGES_NOT_RESENT.inc()
            else:
                sends.append(change_send)
        await deliver(sends, what="aggregator outputs")
        if change_send is not None:
            emitted.record(msg.partition, msg.offset)
        if write is not None:
            await put_acknowledged(alliances, *write, partition=event.message.partition)
        ack(app, manual, event, time_in)


@app.agent(index_topic)
async def index_companies(stream: faust.StreamT) -> None:
    """Second stage of the repartition: the worker owning a company's partition updates it
    (acknowledged before the link is acked, as above). Only our own agent writes here, but
    anyone with access to the broker can: a bad record is dead-lettered (with the
    partnerships' dead letters, naming this topic) rather than crashing the agent or landing
    in a shard no query reaches."""
    manual = stream.noack()
    async for event in manual.events():
        time_in = app.monitor.time()
        metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
        letters: list[Send] = []
        link = decode(CompanyLink, event.value)
        if isinstance(link, Rejected):
            letters = _dead_letter(event, link)
        elif (misplaced := _check_placement(event, link)) is not None:
            letters = _dead_letter(event, misplaced)
        else:
            try:
                updated = add_link(load_index(companies.get(event.key)), link)
            except Exception as exc:
                log.exception("company index update failed")
                letters = _dead_letter(event, Rejected("processing_error", repr(exc)))
            else:
                if updated is not None:
                    await put_acknowledged(companies, event.key, updated.to_bytes(),
                                           partition=event.message.partition)
        await deliver(letters, what="aggregator outputs")
        ack(app, manual, event, time_in)


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


progress = ProgressWatch(kafka().stall_after_s)


@app.timer(interval=2.0)
async def watch_progress() -> None:
    """Feed the stall check of /health: committed and end offsets of the input partitions
    (partnerships, company index) this worker is assigned."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        progress.keep_only(set())  # a rebalance moves partitions: start the clocks again
        return
    inputs = {_topics.partnerships, index_topic.get_topic_name()}
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


@app.timer(interval=5.0)
async def refresh_gauges() -> None:
    if not app.rebalancing:
        agg_metrics.refresh(local_states())
