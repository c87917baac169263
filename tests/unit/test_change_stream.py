"""The change stream's pure parts (`services/aggregator/stream.py`): positions, filters, the
event format, the bounded queue and the heartbeat, without Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.aggregator.queries import QueryError
from services.aggregator.stream import (
    HEARTBEAT,
    ChangeFilter,
    SlowClient,
    enqueue,
    format_position,
    parse_position,
    pump,
    sse_event,
)
from shared.contracts import AllianceChange


def change(parties: list[str], stage: str, article: str) -> AllianceChange:
    return AllianceChange(change_id=f"c-{article}", alliance_id="+".join(
        p.lower() for p in parties), parties=parties, previous_stage=None, stage=stage,
        changed_at=datetime(2024, 1, 1, tzinfo=UTC), event_id=f"e-{article}",
        article_id=article)


@dataclass
class Record:
    offset: int
    value: bytes | None
    topic: str = "alliances.changes.v1"


def test_position_round_trip_and_bad_ids():
    assert format_position({2: 0, 0: 12, 3: 7, 1: 5}) == "0:12,1:5,2:0,3:7"
    assert parse_position("0:12,1:5,2:0,3:7", 4) == {0: 12, 1: 5, 2: 0, 3: 7}
    assert parse_position("1:5", 4) == {1: 5}
    for bad in ("", "x", "0:1,0:2", "4:1", "0:-1", "0=1", "0:1:2"):
        with pytest.raises(QueryError, match="not a stream position"):
            parse_position(bad, 4)


def test_filter_by_company_slug_and_stage():
    talks = change(["Honda", "Nissan"], "talks", "a1")
    assert ChangeFilter.from_query({"company": "NISSAN"}).admits(talks)
    assert not ChangeFilter.from_query({"company": "toyota"}).admits(talks)
    assert ChangeFilter.from_query({"stage": "talks", "company": "honda"}).admits(talks)
    assert not ChangeFilter.from_query({"stage": "agreed"}).admits(talks)
    with pytest.raises(QueryError, match="unknown query parameter"):
        ChangeFilter.from_query({"stgae": "talks"})


def test_sse_event_format():
    assert sse_event("change", '{"a":1}', "0:1") == b'event: change\nid: 0:1\ndata: {"a":1}\n\n'


async def test_enqueue_keeps_matching_changes_with_the_position_after_each():
    queue: asyncio.Queue = asyncio.Queue(10)
    position = {0: 3, 1: 0}
    records = [Record(3, change(["Honda", "Nissan"], "talks", "a").to_bytes()),
               Record(4, b"not json"),  # skipped, position moves on
               Record(5, change(["Ford", "VW"], "agreed", "b").to_bytes()),
               Record(6, change(["Honda", "Sony"], "agreed", "c").to_bytes())]
    enqueue(0, records, position, ChangeFilter(company="honda"), queue)
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(i, AllianceChange.model_validate_json(d).article_id) for i, d in got] == [
        ("0:4,1:0", "a"), ("0:7,1:0", "c")]
    assert position == {0: 7, 1: 0}


async def test_a_full_queue_disconnects_the_client_instead_of_waiting():
    queue: asyncio.Queue = asyncio.Queue(2)
    records = [Record(i, change(["A Co", "B Co"], "talks", str(i)).to_bytes())
               for i in range(3)]
    with pytest.raises(SlowClient):
        enqueue(0, records, {0: 0}, ChangeFilter(), queue)


async def test_pump_sends_ready_then_changes_and_heartbeats_when_quiet():
    queue: asyncio.Queue = asyncio.Queue(5)
    sent: list[bytes] = []

    async def write(data: bytes) -> None:
        sent.append(data)
        if len(sent) >= 4:
            raise ConnectionResetError("client left")

    queue.put_nowait(("0:1", '{"x":1}'))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(pump(write, queue, 0.05, "0:0"), 5)
    assert sent[0] == b'event: ready\nid: 0:0\ndata: {"position": "0:0"}\n\n'
    assert sent[1] == b'event: change\nid: 0:1\ndata: {"x":1}\n\n'
    assert sent[2:] == [HEARTBEAT, HEARTBEAT]
