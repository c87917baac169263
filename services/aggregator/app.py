"""The aggregator: a Faust app whose table holds the live alliance view.

partnerships (keyed by alliance_id) -> `alliances` table (AllianceState JSON per key)
                                    -> alliances.changes.v1 when the stage changes
                                    -> alliances.state.v1 (full state after each change)
The HTTP API answers from the table on the Faust web server.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View

from services.aggregator import metrics as agg_metrics
from services.aggregator.state import Rules, apply
from shared import metrics
from shared.contracts import AllianceState, DeadLetter, PartnershipEvent, Stage
from shared.faust_app import make_app
from shared.kafka import Rejected, decode
from shared.settings import AggregatorSettings, kafka, load, topics

log = logging.getLogger(__name__)
SERVICE = "aggregator"

settings = load(AggregatorSettings)
_topics = topics()
rules = Rules(history_limit=settings.history_limit,
              observation_limit=settings.observation_limit,
              episode_gap_days=settings.episode_gap_days)

app = make_app(settings.app_id, kafka=kafka(), topics=_topics, host=settings.host,
               port=settings.port, data_dir=settings.data_dir,
               advertised_host=settings.advertised_host)
# Faust's sensor serves /metrics from the default registry, which also holds ours.
setup_prometheus_sensors(app, pattern="/metrics", name_prefix="radar_faust")


def _raw_topic(name: str, **kw: Any) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **kw)


partnerships_topic = _raw_topic(_topics.partnerships)
changes_topic = _raw_topic(_topics.changes)
state_topic = _raw_topic(_topics.state, compacting=True)
dlq_topic = _raw_topic(_topics.dlq(_topics.partnerships))

# bytes keys and values pass through Faust's codecs untouched: the value is AllianceState JSON.
alliances = app.Table("alliances", key_type=bytes, value_type=bytes,
                      partitions=_topics.partitions)


def load_state(raw: bytes | None) -> AllianceState | None:
    return AllianceState.model_validate_json(raw) if raw else None


async def _dead_letter(event: faust.EventT, rejected: Rejected) -> None:
    msg = event.message
    log.warning("dead-lettering %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset,
                rejected.error)
    metrics.PIPELINE.dlq.labels(SERVICE, msg.topic, rejected.reason).inc()
    letter = DeadLetter(service=SERVICE, topic_name=msg.topic, partition=msg.partition,
                        offset=msg.offset, record_key=event.key, record_value=event.value,
                        reason=rejected.reason, error=rejected.error[:2000])
    await dlq_topic.send(key=letter.key(), value=letter.to_bytes())


@app.agent(partnerships_topic)
async def aggregate(stream: faust.StreamT) -> None:
    async for event in stream.events():
        metrics.PIPELINE.consumed.labels(SERVICE, event.message.topic).inc()
        result = decode(PartnershipEvent, event.value)
        if isinstance(result, Rejected):
            await _dead_letter(event, result)
            continue
        key = result.key()
        if event.key != key:
            # Another key would put this alliance's state in a partition that does not own it.
            await _dead_letter(event, Rejected("wrong_key", f"record key {event.key!r} is not "
                                               f"the alliance id {key!r}"))
            continue
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
        if change is not None:
            # The change goes out before the table write: a crash in between re-delivers the
            # event and re-emits the same change_id (consumers dedup), never loses it.
            await changes_topic.send(key=key, value=change.to_bytes())
            await state_topic.send(key=key, value=new.to_bytes())
            agg_metrics.record_change(change, previous, result.ingested_at)
            metrics.PIPELINE.produced.labels(SERVICE, _topics.changes).inc()
            metrics.PIPELINE.produced.labels(SERVICE, _topics.state).inc()
        alliances[key] = new.to_bytes()


def local_states() -> list[AllianceState]:
    return [s for s in (load_state(v) for v in alliances.values()) if s is not None]


@app.timer(interval=5.0)
async def refresh_gauges() -> None:
    agg_metrics.refresh(local_states())


def summary(state: AllianceState) -> dict[str, Any]:
    return state.model_dump(mode="json", exclude={"observations"})


class QueryError(ValueError):
    pass


def parse_stage(value: str | None) -> Stage | None:
    if value is None or value == "":
        return None
    try:
        return Stage(value.lower())
    except ValueError:
        raise QueryError(f"unknown stage {value!r}; expected one of "
                         f"{', '.join(s.value for s in Stage)}") from None


def matches_company(state: AllianceState, company: str | None) -> bool:
    if not company:
        return True
    needle = company.casefold()
    return any(p.casefold() == needle for p in state.parties)


@app.page("/alliances")
class AlliancesView(View):
    """GET /alliances?company=&stage= : the live view, filtered."""

    async def get(self, request: Request) -> Response:
        try:
            stage = parse_stage(request.query.get("stage"))
        except QueryError as exc:
            return self.json({"error": str(exc)}, status=400)
        company = request.query.get("company")
        rows = [summary(s) for s in local_states()
                if (stage is None or s.stage == stage) and matches_company(s, company)]
        rows.sort(key=lambda r: (r["last_changed"], r["alliance_id"]), reverse=True)
        return self.json({"count": len(rows), "alliances": rows})


@app.page("/alliances/{alliance_id}")
class AllianceView(View):
    """GET /alliances/{alliance_id}: one alliance, answered by the worker that owns it."""

    @app.table_route(table=alliances, match_info="alliance_id")
    async def get(self, request: Request, alliance_id: str) -> Response:
        state = load_state(alliances.get(alliance_id.encode()))
        if state is None:
            return self.json({"error": f"no alliance with id {alliance_id!r}"}, status=404)
        return self.json(summary(state))


def readiness() -> tuple[bool, dict[str, object]]:
    consumer = app.consumer if app.producer is not None else None
    assigned = len(consumer.assignment()) if consumer is not None else 0
    recovered = app.tables.recovery.completed.is_set()
    ready = bool(app.started and assigned and recovered and not app.rebalancing)
    return ready, {"assigned_partitions": assigned, "recovered": recovered,
                   "alliances": len(alliances)}


@app.page("/health")
class HealthView(View):
    async def get(self, request: Request) -> Response:
        ready, detail = readiness()
        metrics.PIPELINE.up.labels(SERVICE).set(1 if ready else 0)
        return self.json({"service": SERVICE, "status": "ready" if ready else "starting"}
                         | detail, status=200 if ready else 503)
