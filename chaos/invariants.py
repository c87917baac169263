"""What a faulted run must have in common with the reference run: pure functions over two
snapshots (what the ingestor answered, what is on the topics, what the API shows).

1. published: the same articles were answered `published`, and every partnership event
   those articles yield (as the reference extracted them) is in the view, once;
2. view: every alliance has the same parties, stage, episode, article count, sources and
   stage history; the company index lists the same alliances at the same stages;
3. no change_id twice on alliances.changes.v1;
4. transitions: the change feed is exactly what the stage rules give for the order in which
   the partnership events arrived (`predict_changes`). Arrival order differs between runs
   (articles of one alliance are extracted in parallel partitions, redelivered after a
   crash), and a change is emitted when an arrival moves the stage: a clean-run transition
   absent from the faulted run is explained when that fold, over the faulted run's arrival
   order, does not produce it either (e.g. `talks` arriving after `agreed` of the same
   alliance adds support and emits nothing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.aggregator.routing import partition_for
from services.aggregator.state import Rules, apply
from shared.contracts import AllianceState, PartnershipEvent
from shared.kafka import Rejected, decode

#: Fields of an alliance compared between runs (`updated_at` is wall-clock; confidence and
#: areas follow from the same observations, so they are compared too).
VIEW_FIELDS = ("parties", "stage", "episode", "article_count", "sources", "areas",
               "first_seen", "last_changed", "confidence")


@dataclass(frozen=True)
class Record:
    """One Kafka record as the checks need it."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass
class Snapshot:
    """Everything one run produced, read after it drained."""

    published: set[str] = field(default_factory=set)
    partnerships: list[Record] = field(default_factory=list)
    changes: list[Record] = field(default_factory=list)
    view: dict[str, dict] = field(default_factory=dict)
    observations: dict[str, list[str]] = field(default_factory=dict)
    companies: dict[str, dict[str, str]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)

    def article_events(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for event in _events(self.partnerships):
            out[event.article_id].add(event.event_id)
        return out


@dataclass
class Check:
    name: str
    ok: bool
    detail: dict = field(default_factory=dict)


def _events(records: Iterable[Record]) -> Iterable[PartnershipEvent]:
    for record in records:
        event = decode(PartnershipEvent, record.value)
        if not isinstance(event, Rejected):
            yield event


def change_ids(records: Iterable[Record]) -> list[str]:
    import json

    out = []
    for record in records:
        try:
            out.append(json.loads(record.value or b"{}")["change_id"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def predict_changes(partnerships: list[Record], partitions: int,
                    rules: Rules = Rules()) -> list[str]:
    """The change ids the aggregator emits for partnership records arriving in this order
    (per partition, by offset), following its rules: placement check, fold, dedup on event
    id. Records of different partitions never touch the same alliance."""
    states: dict[str, AllianceState] = {}
    out = []
    for record in sorted(partnerships, key=lambda r: (r.partition, r.offset)):
        event = decode(PartnershipEvent, record.value)
        if isinstance(event, Rejected):
            continue
        key = event.key()
        if record.key != key or record.partition != partition_for(key, partitions):
            continue
        new, change = apply(states.get(event.alliance_id), event, rules)
        if new is not None:
            states[event.alliance_id] = new
        if change is not None:
            out.append(change.change_id)
    return out


def check_published(ref: Snapshot, run: Snapshot) -> Check:
    expected_by_article = ref.article_events()
    expected = {e for a in run.published for e in expected_by_article.get(a, ())}
    seen = Counter(e for obs in run.observations.values() for e in obs)
    in_view = set(seen)
    missing = sorted(expected - in_view)
    unexpected = sorted(in_view - expected)
    twice = sorted(e for e, n in seen.items() if n > 1)
    answered_differently = sorted(ref.published ^ run.published)
    ok = not (missing or unexpected or twice or answered_differently)
    return Check("published articles' events in the view, once", ok, {
        "published": len(run.published), "events_expected": len(expected),
        "events_missing": len(missing), "events_unexpected": len(unexpected),
        "events_twice": len(twice), "answered_differently": len(answered_differently),
        "examples": (missing + unexpected + twice + answered_differently)[:5]})


def check_view(ref: Snapshot, run: Snapshot) -> Check:
    differing = []
    for alliance_id in sorted(set(ref.view) | set(run.view)):
        a, b = ref.view.get(alliance_id), run.view.get(alliance_id)
        if a is None or b is None:
            differing.append((alliance_id, "absent in " + ("reference" if a is None
                                                            else "faulted run")))
            continue
        fields = [f for f in (*VIEW_FIELDS, "history") if _comparable(a, f) != _comparable(b, f)]
        if fields:
            differing.append((alliance_id, ",".join(fields)))
    companies = sorted(c for c in set(ref.companies) | set(run.companies)
                       if ref.companies.get(c) != run.companies.get(c))
    ok = not differing and not companies
    return Check("view equals the reference (alliances and company index)", ok, {
        "alliances": len(run.view), "alliances_reference": len(ref.view),
        "alliances_differing": len(differing), "companies_differing": len(companies),
        "examples": [f"{a}: {why}" for a, why in differing[:5]] + companies[:5]})


def _comparable(row: dict, name: str) -> object:
    value = row.get(name)
    if name == "history":  # the transitions, without wall-clock fields
        return [(h["previous_stage"], h["stage"], h["episode"], h["event_id"])
                for h in value or []]
    return value


def check_no_duplicate_changes(run: Snapshot) -> Check:
    """A change id on the topic twice. `producer_retry` counts copies with the same
    producer timestamp and bytes: one send that the broker wrote, whose answer was lost to a
    cut connection and which the client re-sent (the embedded broker has no idempotent
    producer); `re_emitted` counts separate sends of one change."""
    by_id: dict[str, list[Record]] = defaultdict(list)
    for record, change_id in zip(run.changes, change_ids(run.changes), strict=False):
        by_id[change_id].append(record)
    retries = re_emitted = 0
    examples = []
    for change_id, records in by_id.items():
        if len(records) < 2:
            continue
        sends = {(r.timestamp, r.value) for r in records}
        retries += len(records) - len(sends)
        re_emitted += len(sends) - 1
        examples.append(change_id)
    return Check("no change_id twice", not examples, {
        "changes": len(run.changes), "distinct": len(by_id),
        "re_emitted": re_emitted, "producer_retry": retries, "examples": examples[:5]})


def check_transitions(ref: Snapshot, run: Snapshot, partitions: int,
                      rules: Rules = Rules()) -> Check:
    emitted = set(change_ids(run.changes))
    predicted = set(predict_changes(run.partnerships, partitions, rules))
    reference = set(change_ids(ref.changes))
    reference_predicted = set(predict_changes(ref.partnerships, partitions, rules))
    present = reference & emitted
    explained = {c for c in reference - emitted if c not in predicted}
    unexplained = reference - emitted - explained
    ok = emitted == predicted and not unexplained and reference == reference_predicted
    return Check("every clean transition present or explained by arrival order", ok, {
        "reference": len(reference), "present": len(present), "explained": len(explained),
        "unexplained": len(unexplained), "emitted_not_predicted": len(emitted - predicted),
        "predicted_not_emitted": len(predicted - emitted),
        "reference_off_rule": len(reference ^ reference_predicted),
        "examples": sorted(unexplained | (emitted ^ predicted))[:5]})


def check_all(ref: Snapshot, run: Snapshot, partitions: int,
              rules: Rules = Rules()) -> list[Check]:
    return [check_published(ref, run), check_view(ref, run), check_no_duplicate_changes(run),
            check_transitions(ref, run, partitions, rules)]
