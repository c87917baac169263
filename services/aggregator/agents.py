"""The aggregator's two agents, registered on the app by `register`:

partnerships (keyed by alliance_id) -> `alliances` table (AllianceState JSON per alliance id)
                                    -> alliances.changes.v1 when the stage changes
                                    -> alliances.state.v1 (full state after each change)
                                    -> <app id>-company-index (one CompanyLink per party,
                                       keyed by company) -> `companies` table

Only the Kafka wiring lives here; the rules are in `state.py` and `index.py`. Every record's
effects are acknowledged by the broker before the record is acked (manual acks; see
`shared.faust_app.deliver`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from services.aggregator import metrics as agg_metrics
from services.aggregator.fence import source_header
from services.aggregator.index import add_link, index_changed, links_for
from services.aggregator.lanes import PartitionLanes
from services.aggregator.state import apply
from services.aggregator.tables import load_index, load_state
from services.aggregator.wiring import SERVICE, Aggregator
from shared import metrics
from shared.contracts import AllianceState, CompanyLink, PartnershipEvent
from shared.faust_app import ack, deliver, put_acknowledged, record_send
from shared.kafka import Rejected, decode, make_dead_letter

log = logging.getLogger(__name__)
Send = Callable[[], Awaitable[Awaitable[Any]]]


def register(agg: Aggregator) -> None:
    """Add the alliance agent and the company-index agent to `agg.app`."""
    app = agg.app

    @app.agent(agg.channels.partnerships)
    async def aggregate(stream: faust.StreamT) -> None:
        await in_lanes(agg, stream, fold_partnership)

    @app.agent(agg.channels.company_index)
    async def index_companies(stream: faust.StreamT) -> None:
        await in_lanes(agg, stream, index_company_link)


def _dead_letter(agg: Aggregator, event: faust.EventT, rejected: Rejected) -> list[Send]:
    """The dead-letter send for `event` (none when publishing is off)."""
    msg = event.message
    letter = make_dead_letter(SERVICE, topic=msg.topic, partition=msg.partition,
                              offset=msg.offset, key=event.key, value=event.value,
                              rejected=rejected)
    if not agg.settings.publish:
        return []
    return [record_send(agg.channels.dead_letters, letter.key(), letter.to_bytes())]


def _check_placement(agg: Aggregator, event: faust.EventT,
                     result: PartnershipEvent | CompanyLink) -> Rejected | None:
    """The record must sit where its key hashes to: the table shard and the query router
    both assume it (a key written to another partition would be answered by a worker that
    does not hold it)."""
    key = result.key()
    if event.key != key:
        what = "alliance id" if isinstance(result, PartnershipEvent) else "company key"
        return Rejected("wrong_key", f"record key {event.key!r} is not the {what} {key!r}")
    expected = agg.tables.key_partition(key)
    if event.message.partition != expected:
        return Rejected("wrong_partition", f"alliance {key!r} belongs in partition "
                        f"{expected}, not {event.message.partition}")
    return None


def _outputs(agg: Aggregator, event: faust.EventT
             ) -> tuple[list[Send], Send | None, tuple[bytes, AllianceState] | None]:
    """What one partnership record causes: the sends (state, index links, or a dead letter),
    the change send, and the table write, decided from the table as it is (pure but for
    metrics). The change goes to the partition of the record that caused it, marked with
    its offset (see `services.aggregator.fence.ChangeFence`)."""
    metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
    result = decode(PartnershipEvent, event.value)
    if isinstance(result, Rejected):
        return _dead_letter(agg, event, result), None, None
    misplaced = _check_placement(agg, event, result)
    if misplaced is not None:
        return _dead_letter(agg, event, misplaced), None, None
    key = result.key()
    try:
        previous = load_state(agg.tables.alliances.get(key))
        new, change = apply(previous, result, agg.rules)
    except Exception as exc:  # a poison record must not stop the agent
        log.exception("aggregation failed")
        return _dead_letter(agg, event, Rejected("processing_error", repr(exc))), None, None
    if new is None:
        agg_metrics.DUPLICATES.inc()
        return [], None, None
    sends: list[Send] = []
    change_send: Send | None = None
    if change is not None:
        if agg.settings.publish:
            msg = event.message
            change_send = record_send(agg.channels.changes, key, change.to_bytes(),
                                      partition=msg.partition,
                                      headers=source_header(msg.partition, msg.offset))
            sends.append(record_send(agg.channels.state, key, new.to_bytes()))
            metrics.PIPELINE.produced.labels(SERVICE, agg.topics.changes).inc()
            metrics.PIPELINE.produced.labels(SERVICE, agg.topics.state).inc()
        agg_metrics.record_change(change, previous, result.ingested_at)
    if index_changed(previous, new):
        sends += [record_send(agg.channels.company_index, link.key(), link.to_bytes())
                  for link in links_for(new, source_offset=event.message.offset)]
    return sends, change_send, (key, new)


async def in_lanes(agg: Aggregator, stream: faust.StreamT,
                   handle: Callable[[Aggregator, faust.StreamT, faust.EventT, float],
                                    Awaitable[None]]) -> None:
    """Each record of `stream` to `handle`, one at a time per input partition, the
    partitions side by side (`lanes.py`). A record of a partition this worker no longer
    holds (revoked while it waited) is left unacked: its new owner gets it."""
    app = agg.app
    manual = stream.noack()

    async def handle_if_ours(item: tuple[faust.EventT, float]) -> None:
        event, time_in = item
        if event.message.tp in app.consumer.assignment():
            await handle(agg, manual, event, time_in)

    lanes: PartitionLanes[tuple[faust.EventT, float]] = PartitionLanes(handle_if_ours, depth=256)
    try:
        async for event in manual.events():
            await lanes.put(event.message.partition, (event, app.monitor.time()))
    finally:
        await lanes.close()


async def fold_partnership(agg: Aggregator, manual: faust.StreamT, event: faust.EventT,
                           time_in: float) -> None:
    """One partnership record: its change, state and index links acknowledged by the
    broker, then its table write acknowledged, then the record acked (so Faust commits its
    offset). A crash anywhere before the ack redelivers the record: before the table write,
    the same change is sent again (same change_id; subscribers dedup), after it, the event
    is a duplicate and changes nothing. Never a committed offset whose effects are missing
    (see `shared.faust_app.deliver`). The records of one partition come here one at a time,
    in order (the change fence and the table writes of a key rely on it)."""
    app = agg.app
    sends, change_send, write = _outputs(agg, event)
    msg = event.message
    if change_send is not None:
        if msg.offset <= await agg.fence.upto(msg.partition):
            log.info("change of %s[%s]@%s is already on %s (sent before a restart); "
                     "not sent again", msg.topic, msg.partition, msg.offset,
                     agg.topics.changes)
            agg_metrics.CHANGES_NOT_RESENT.inc()
        else:
            sends.append(change_send)
    await deliver(sends, what="aggregator outputs")
    if change_send is not None:
        agg.fence.record(msg.partition, msg.offset)
    if write is not None:
        key, state = write
        await put_acknowledged(agg.tables.alliances, key, state.to_bytes(),
                               partition=msg.partition)
        agg.tables.alliance_written(msg.partition, state)
    ack(app, manual, event, time_in)


async def index_company_link(agg: Aggregator, manual: faust.StreamT, event: faust.EventT,
                             time_in: float) -> None:
    """Second stage of the repartition: the worker owning a company's partition updates it
    (acknowledged before the link is acked, as above). Only our own agent writes here, but
    anyone with access to the broker can: a bad record is dead-lettered (with the
    partnerships' dead letters, naming this topic) rather than crashing the agent or landing
    in a shard no query reaches."""
    app = agg.app
    companies = agg.tables.companies
    metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
    letters: list[Send] = []
    link = decode(CompanyLink, event.value)
    if isinstance(link, Rejected):
        letters = _dead_letter(agg, event, link)
    elif (misplaced := _check_placement(agg, event, link)) is not None:
        letters = _dead_letter(agg, event, misplaced)
    else:
        try:
            updated = add_link(load_index(companies.get(event.key)), link)
        except Exception as exc:
            log.exception("company index update failed")
            letters = _dead_letter(agg, event, Rejected("processing_error", repr(exc)))
        else:
            if updated is not None:
                await put_acknowledged(companies, event.key, updated.to_bytes(),
                                       partition=event.message.partition)
                agg.tables.company_written(event.message.partition, updated)
    await deliver(letters, what="aggregator outputs")
    ack(app, manual, event, time_in)
