"""Chaos: the aggregator under a slow broker link and SIGKILL, the stall report of /health,
and the short form of the chaos suite (`make chaos` runs the long one).

Each test has its own broker behind a faulty TCP proxy (chaos/proxy.py): the broker
advertises the proxy, so every service connection goes through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from chaos.run import APP_ID, Cluster, behind, committed_by, read_topic
from services.cli.stack import SERVICES
from shared.contracts import Evidence, PartnershipEvent
from shared.kafka import producer_options
from tests.helpers import async_wait_until, wait_until

ALLIANCES = 24
OFFSET_COMMIT = 8  # Kafka API key


def event(i: int, stage: str = "talks") -> PartnershipEvent:
    parties = [f"Chaos{i} Motors", f"Chaos{i} Energy"]
    article = f"chaos-commit-{i}"
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.8,
        published_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=i),
        evidence=[Evidence(sentence=f"{parties[0]} and {parties[1]} are in talks.", start=0,
                           end=10)])


@pytest.fixture
def aggregator_only(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.proxy.start()
    cluster.broker.start()
    cluster.stack.start(names=("aggregator",))
    try:
        cluster.stack.wait_healthy(timeout=120)
        yield cluster
    finally:
        cluster.__exit__()


async def produce(cluster: Cluster, events: list[PartnershipEvent]) -> None:
    producer = AIOKafkaProducer(**producer_options(cluster.kafka()))
    await producer.start()
    try:
        sent = [await producer.send(cluster.topics.partnerships, e.to_bytes(), key=e.key())
                for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def view_ids(cluster: Cluster) -> set[str] | None:
    resp = httpx.get(cluster.url("aggregator", "/alliances"), timeout=10)
    return {r["alliance_id"] for r in resp.json()["alliances"]} if resp.status_code == 200 \
        else None


@pytest.mark.timeout(600)
async def test_aggregator_never_commits_an_offset_whose_writes_were_not_acknowledged(
        aggregator_only: Cluster) -> None:
    """The broker link is slow (each way 250 ms per chunk), so every send takes half a
    second. Faust's own commit path gave up flushing its producer buffer after 0.1 s and
    committed offsets whose table writes were still queued: a SIGKILL right after the first
    commit lost them for good (alliances absent from the view after the restart, their
    events never redelivered). The agent now acks a record only once its change, state,
    index links and table write are acknowledged, so everything committed is durable."""
    cluster = aggregator_only
    events = [event(i) for i in range(ALLIANCES)]
    aggregator = cluster.stack.services["aggregator"]
    os.kill(aggregator.process.pid, signal.SIGSTOP)  # let the backlog build up first
    before = await committed_by(cluster, APP_ID)
    try:
        await produce(cluster, events)
        cluster.proxy.delay(0.25, for_s=600)
        commit = cluster.proxy.watch(OFFSET_COMMIT)
    finally:
        os.kill(aggregator.process.pid, signal.SIGCONT)
    assert await asyncio.to_thread(commit.wait, 90), "the aggregator never committed"
    # The commit crosses the slow link (250 ms each way): wait until the broker has it.
    async def commit_landed() -> bool:
        return await committed_by(cluster, APP_ID) != before

    await async_wait_until(commit_landed, 30, 0.05, "the watched commit reached the broker")
    aggregator.kill()  # SIGKILL right after a commit: whatever is still queued is gone
    cluster.proxy.delay(0, for_s=0)
    aggregator.start()
    cluster.stack.wait_healthy(timeout=120, names=("aggregator",))
    await async_wait_until(lambda: _drained(cluster), 120, 0.5, "aggregator drained")
    expected = {e.alliance_id for e in events}
    got = wait_until(lambda: view_ids(cluster), 30, message="view")
    assert got == expected, f"lost after a commit: {sorted(expected - got)}"
    # Every alliance's first change reached the change feed too.
    changes = {r.key.decode() for r in await read_topic(cluster, cluster.topics.changes)}
    assert changes == expected


async def _drained(cluster: Cluster) -> bool:
    return APP_ID not in await behind(cluster)


@pytest.mark.timeout(900)
def test_chaos_short_form(tmp_path: Path) -> None:
    """`make chaos` in little: 600 articles, 6 kills and the other faults (pauses, cut
    connections, a slow and an unreachable broker), every invariant held."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "chaos", "--articles", "600", "--kills", "6", "--rate", "40",
         "--seed", "7", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=840, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-4000:]
    assert '"ok": true' in out.stdout
    assert all(name in out.stdout for name in SERVICES)


@pytest.mark.timeout(300)
async def test_a_change_already_sent_before_a_crash_is_not_sent_again(
        aggregator_only: Cluster) -> None:
    """The change of a record is acknowledged before its table write: a crash in between
    redelivers the record to a table without it. Here that crash has just happened: the
    change of the record at offset 0 is on the change topic (marked with its source, as the
    aggregator marks it), the table has nothing. The redelivered record must update the
    view without sending the same change_id a second time; the next record's change still
    goes out."""
    from services.aggregator.routing import partition_for
    from services.aggregator.state import apply

    cluster = aggregator_only
    first, second = event(100), event(101)
    partition = partition_for(first.key(), cluster.topics.partitions)
    while partition_for(second.key(), cluster.topics.partitions) != partition:
        second = event(int(second.article_id.rsplit("-", 1)[1]) + 1)
    _, change = apply(None, first)
    assert change is not None
    producer = AIOKafkaProducer(**producer_options(cluster.kafka()))
    await producer.start()
    try:
        await producer.send_and_wait(cluster.topics.changes, change.to_bytes(), key=first.key(),
                                     partition=partition,
                                     headers=[("radar-source", f"{partition}@0".encode())])
    finally:
        await producer.stop()
    await produce(cluster, [first, second])
    await async_wait_until(lambda: _drained(cluster), 120, 0.5, "aggregator drained")
    assert {first.alliance_id, second.alliance_id} <= wait_until(
        lambda: view_ids(cluster), 30, message="view")
    records = await read_topic(cluster, cluster.topics.changes)
    ids = [json.loads(r.value)["change_id"] for r in records]
    assert ids.count(change.change_id) == 1, "a change already sent went out again"
    assert len(ids) == 2
    assert records[1].partition == partition
