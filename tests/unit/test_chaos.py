"""The pure parts of the chaos suite and the stall check: fault plans, invariants, the
Kafka request parser of the proxy, ProgressWatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chaos.faults import counts_for, plan
from chaos.invariants import (
    Record,
    Snapshot,
    check_no_duplicate_changes,
    check_published,
    check_transitions,
    check_view,
    predict_changes,
)
from chaos.proxy import _Requests
from services.aggregator.routing import partition_for
from shared.contracts import Evidence, PartnershipEvent
from shared.progress import ProgressWatch

PARTITIONS = 4


def event(article: str, stage: str, day: int, pair: tuple[str, str] = ("Acme", "Globex")
          ) -> PartnershipEvent:
    parties = list(pair)
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.7,
        published_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day),
        evidence=[Evidence(sentence="x", start=0, end=1)])


def records(events: list[PartnershipEvent]) -> list[Record]:
    out = []
    for offset, e in enumerate(events):
        out.append(Record(partition_for(e.key(), PARTITIONS), offset, 0, e.key(), e.to_bytes()))
    return out


def change_record(change_id: str, timestamp: int = 1) -> Record:
    return Record(0, 0, timestamp, b"k", f'{{"change_id": "{change_id}"}}'.encode())


# ------------------------------------------------------------------ fault plans


def test_plan_is_seeded_and_has_the_promised_mix() -> None:
    faults = plan(3, 20, window_s=100)
    assert faults == plan(3, 20, window_s=100)
    assert faults != plan(4, 20, window_s=100)
    kinds = {k: sum(f.kind == k for f in faults) for k in counts_for(20)}
    assert kinds == counts_for(20) == {"kill": 20, "stop": 5, "cut": 5, "delay": 2, "refuse": 2}
    assert all(2.0 <= f.at_s <= 100 for f in faults)
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    kills = [f for f in faults if f.kind == "kill"]
    assert any(len(f.targets) == 2 for f in kills), "several at once"
    assert all(1.0 <= f.duration_s <= 3.0 for f in kills)
    assert plan(1, 0, window_s=10) == []


# ------------------------------------------------------------------ invariants


def test_predicted_changes_follow_arrival_order() -> None:
    talks, agreed = event("a1", "talks", 1), event("a2", "agreed", 2)
    in_order = predict_changes(records([talks, agreed]), PARTITIONS)
    reversed_ = predict_changes(records([agreed, talks]), PARTITIONS)
    assert len(in_order) == 2  # new at talks, then talks -> agreed
    assert len(reversed_) == 1  # agreed first; the older talks only adds support
    assert reversed_[0] == in_order[1]
    # A redelivered event changes nothing.
    assert predict_changes(records([talks, talks, agreed]), PARTITIONS) == in_order


def test_transitions_missing_by_arrival_order_are_explained_others_are_not() -> None:
    talks, agreed = event("a1", "talks", 1), event("a2", "agreed", 2)
    ref = Snapshot(partnerships=records([talks, agreed]))
    ref.changes = [change_record(c) for c in predict_changes(ref.partnerships, PARTITIONS)]
    run = Snapshot(partnerships=records([agreed, talks]))
    run.changes = [change_record(c) for c in predict_changes(run.partnerships, PARTITIONS)]
    check = check_transitions(ref, run, PARTITIONS)
    assert check.ok and check.detail["explained"] == 1 and check.detail["present"] == 1
    lost = Snapshot(partnerships=run.partnerships, changes=[])  # the change never came out
    check = check_transitions(ref, lost, PARTITIONS)
    assert not check.ok and check.detail["predicted_not_emitted"] == 1


def test_duplicate_change_ids_are_counted_and_classified() -> None:
    once = Snapshot(changes=[change_record("c1"), change_record("c2")])
    assert check_no_duplicate_changes(once).ok
    retried = Snapshot(changes=[change_record("c1"), change_record("c1")])
    check = check_no_duplicate_changes(retried)
    assert not check.ok and check.detail["producer_retry"] == 1
    again = Snapshot(changes=[change_record("c1", 1), change_record("c1", 2)])
    assert check_no_duplicate_changes(again).detail["re_emitted"] == 1


def test_published_articles_must_have_their_events_in_the_view_once() -> None:
    e = event("a1", "talks", 1)
    ref = Snapshot(published={"a1"}, partnerships=records([e]),
                   observations={e.alliance_id: [e.event_id]})
    assert check_published(ref, ref).ok
    lost = Snapshot(published={"a1"}, observations={})
    assert check_published(ref, lost).detail["events_missing"] == 1
    twice = Snapshot(published={"a1"}, observations={"x": [e.event_id], "y": [e.event_id]})
    assert not check_published(ref, twice).ok
    unanswered = Snapshot(published=set(), observations={e.alliance_id: [e.event_id]})
    assert not check_published(ref, unanswered).ok


def test_view_check_names_the_differing_fields() -> None:
    row = {"parties": ["A", "B"], "stage": "talks", "episode": 1, "article_count": 2,
           "sources": ["X"], "history": [{"previous_stage": None, "stage": "talks",
                                          "episode": 1, "event_id": "e1"}]}
    ref = Snapshot(view={"a+b": row}, companies={"a": {"a+b": "talks"}})
    assert check_view(ref, ref).ok
    other = Snapshot(view={"a+b": row | {"stage": "agreed"}}, companies=ref.companies)
    check = check_view(ref, other)
    assert not check.ok and "stage" in check.detail["examples"][0]
    assert not check_view(ref, Snapshot(view={}, companies=ref.companies)).ok


# ------------------------------------------------------------------ proxy request parser


def test_request_parser_finds_api_keys_across_chunks() -> None:
    def request(api_key: int, body: bytes) -> bytes:
        payload = api_key.to_bytes(2, "big") + body
        return len(payload).to_bytes(4, "big") + payload

    stream = request(3, b"x" * 10) + request(8, b"yy") + request(0, b"")
    parser = _Requests()
    keys = []
    for i in range(0, len(stream), 3):  # 3-byte chunks: headers split everywhere
        keys += parser.feed(stream[i:i + 3])
    assert keys == [3, 8, 0]


# ------------------------------------------------------------------ stall check


def test_progress_watch_reports_a_partition_behind_and_not_moving() -> None:
    watch = ProgressWatch(stall_after_s=30)
    watch.observe("t", 0, committed=59, end=85, now=0)
    watch.observe("t", 1, committed=10, end=10, now=0)  # caught up: never stalled
    assert watch.stalls(now=29) == []
    watch.observe("t", 0, committed=59, end=85, now=31)
    watch.observe("t", 1, committed=10, end=10, now=31)
    (stall,) = watch.stalls(now=31)
    assert (stall.topic, stall.partition, stall.committed, stall.end) == ("t", 0, 59, 85)
    assert stall.as_json()["stalled_for_s"] == 31
    watch.observe("t", 0, committed=60, end=85, now=32)  # it moved: the clock restarts
    assert watch.stalls(now=60) == []
    assert watch.stalls(now=62) != []
    watch.keep_only(set())  # revoked: not ours any more
    assert watch.stalls(now=100) == []


def test_a_partition_waiting_its_turn_behind_a_busy_one_is_not_stalled() -> None:
    """With a backlog a client drains one partition's buffer before the next: B waits (its
    position is its committed offset) while A moves. Records taken and never finished
    (position past committed: what Faust's dropped fetches looked like) are a stall."""
    watch = ProgressWatch(stall_after_s=30)
    for now in range(0, 61, 5):
        watch.observe("t", 0, committed=now, end=1000, now=now, position=now + 32)
        watch.observe("t", 1, committed=7, end=500, now=now, position=7)
    assert watch.stalls(now=60) == []
    watch.observe("t", 1, committed=7, end=500, now=61, position=500)  # taken, not done
    assert [s.partition for s in watch.stalls(now=61)] == [1]
