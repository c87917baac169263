"""The extractor's worker-process pool through the real broker: what the pooled service
publishes equals the single-process offline extraction of the same articles, bad records
still become dead letters, and a second extractor process (`radar up --extractors 2`) shares
the partitions in the one consumer group."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from services.cli.stack import Stack
from services.extractor.pipeline import Extractor
from services.extractor.workers import default_processes
from services.ingestor.sources import article_from_mapping
from shared.contracts import ArticleEvent, DeadLetter, PartnershipEvent
from tests.helpers import TopicReader, produce, valid, wait_until

DATA = Path(__file__).resolve().parents[1] / "data" / "reuters_train" / "articles.jsonl"


def reuters(prefix: str, count: int, skip: int = 0) -> list[ArticleEvent]:
    lines = [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()]
    return [article_from_mapping(item | {"id": f"{prefix}-{item['id']}"}, where="reuters",
                                 default_source="Reuters")
            for item in lines[skip:skip + count]]


def summary(events: list[PartnershipEvent]) -> set[tuple]:
    return {(e.article_id, tuple(e.parties), e.stage.value, e.confidence) for e in events}


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load()


def health(svc) -> dict:
    return httpx.get(svc.base_url + "/health", timeout=5).json()


async def test_pooled_extractor_publishes_what_one_process_extracts(
        stack: Stack, extractor: Extractor) -> None:
    status = health(stack.services["extractor"])
    assert status["extraction_processes"] == default_processes()
    if default_processes() > 1:
        assert len(status["worker_pids"]) == default_processes()
    articles = reuters("it-pool", 64)
    expected = summary([e for events in extractor.extract_many(articles) for e in events])
    assert len({a for a, *_ in expected}) >= 5
    ids = {a.article_id for a in articles}
    await produce(stack.bootstrap, "news.articles.v1",
                  [(a.key(), a.to_bytes()) for a in articles[:32]]
                  + [(b"it-pool-junk", b"{not an article")]
                  + [(a.key(), a.to_bytes()) for a in articles[32:]])

    def ours(records: list) -> set[tuple]:
        return summary([e for e in valid(records, PartnershipEvent) if e.article_id in ids])

    async with TopicReader(stack.bootstrap, "alliances.partnerships.v1") as out:
        await out.wait_for(lambda rs: ours(rs) >= expected, timeout=120,
                           message="every expected event")
    assert ours(out.records) == expected
    def junk(records: list) -> list[DeadLetter]:
        return [d for d in map(DeadLetter.from_bytes, (r.value for r in records))
                if d.record_key == b"it-pool-junk"]

    async with TopicReader(stack.bootstrap, "news.articles.v1.dlq") as dlq:
        await dlq.wait_for(lambda rs: bool(junk(rs)), message="the junk record's dead letter")
    letter = junk(dlq.records)[0]
    assert letter.reason == "invalid_json" and letter.service == "extractor"
    assert health(stack.services["extractor"])["status"] == "ready"


async def test_a_second_extractor_process_shares_the_consumer_group(
        stack: Stack, extractor: Extractor, tmp_path: Path) -> None:
    two = Stack(run_dir=tmp_path, bootstrap_servers=stack.bootstrap, host=stack.host,
                ports=dict(stack.ports), extra_env=dict(stack.extra_env), extractors=2)
    planned = two.plan(("extractor",))
    assert [s.name for s in planned] == ["extractor", "extractor-2"]
    second = planned[1]
    assert second.kind == "extractor" and second.port != stack.ports["extractor"]
    assert second.env["RADAR_EXTRACTOR_PROCESSES"] == "1"
    second.start()
    first = stack.services["extractor"]
    try:
        # Both members hold some of the 4 partitions once the group has rebalanced.
        wait_until(lambda: second.healthy() and health(second)["assigned_partitions"] > 0
                   and 0 < health(first).get("assigned_partitions", 0) < 4,
                   timeout=90, message="the group split between two extractors")
        assert health(second)["extraction_processes"] == 1
        articles = reuters("it-two", 40, skip=100)
        expected = summary([e for events in extractor.extract_many(articles) for e in events])
        ids = {a.article_id for a in articles}
        before = _consumed(first)
        await produce(stack.bootstrap, "news.articles.v1",
                      [(a.key(), a.to_bytes()) for a in articles])
        async with TopicReader(stack.bootstrap, "alliances.partnerships.v1") as out:
            await out.wait_for(
                lambda rs: summary([e for e in valid(rs, PartnershipEvent)
                                    if e.article_id in ids]) >= expected,
                timeout=120, message="every expected event from the two extractors")
        # Each process took its partitions' share.
        shares = [_consumed(first) - before, _consumed(second)]
        assert all(n > 0 for n in shares) and sum(shares) >= len(articles), shares
    finally:
        second.stop()
    wait_until(lambda: health(first).get("assigned_partitions") == 4, timeout=90,
               message="the first extractor holding every partition again")


def _consumed(svc) -> float:
    from bench.stats import parse_metrics, total

    text = httpx.get(svc.base_url + "/metrics", timeout=5).text
    return total(parse_metrics(text), "radar_messages_consumed_total",
                 topic="news.articles.v1")
