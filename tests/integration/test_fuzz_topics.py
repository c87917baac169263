"""Raw bytes on every consumed topic, through the real broker into the running services.

For each topic a service consumes, a corpus of hostile records (random bytes, truncated and
bit-flipped JSON, wrong types, missing and unknown fields, nesting past any parser's limit,
invalid UTF-8, null and empty values, 700 kB values, records under the wrong key) is written
with a few good records among them. Asserted, not logged: the service never crashes or
restarts; it reads past every record (its group commits to the end); every record that does
not decode gets exactly one dead letter at its partition and offset with the reason the
decoder gives (counted in radar_dlq_records_total); every record the service rejects later
is dead-lettered with a reason too; and the good records in the same batches take effect.
`make test` runs a short seeded corpus, `make fuzz` 10,000 records per topic.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from services.aggregator.index import CompanyLink, index_topic_name
from services.cli.replay import committed_offsets
from services.cli.stack import ServiceProcess, Stack
from shared.broker import free_port
from shared.contracts import (
    ArticleEvent,
    Contract,
    DeadLetter,
    Evidence,
    PartnershipEvent,
    RawDocument,
    SeenArticle,
    stable_hash,
)
from shared.kafka import Rejected, decode, producer_options
from shared.settings import TopicSettings
from tests.fuzzing import FULL, SEED, cases, door, mutate, patience
from tests.helpers import TopicReader, async_wait_until, kafka_settings, valid, wait_until

# Names of this run's records and topics: fixed in the deterministic profile (each session
# has a broker of its own), fresh in `make fuzz`.
RUN = uuid.uuid4().hex[:6] if FULL else "d0d0d0"
# A stack of its own, on topics of its own: the corpus (null values, junk keys) must not
# reach the session stack's topics, which other tests read with their own assumptions.
T = TopicSettings(articles=f"fz-{RUN}.articles", partnerships=f"fz-{RUN}.partnerships",
                  changes=f"fz-{RUN}.changes", state=f"fz-{RUN}.state")
INBOX, SEEN = f"fz-{RUN}.inbox", f"fz-{RUN}.seen"
INGESTOR_GROUP, EXTRACTOR_GROUP, APP_ID = (f"fz-{RUN}-ingestor", f"fz-{RUN}-extractor",
                                           f"fz-{RUN}-aggregator")
STACK_ENV = {"RADAR_TOPIC_ARTICLES": T.articles, "RADAR_TOPIC_PARTNERSHIPS": T.partnerships,
             "RADAR_TOPIC_CHANGES": T.changes, "RADAR_TOPIC_STATE": T.state,
             "RADAR_INGESTOR_INBOX_TOPIC": INBOX, "RADAR_INGESTOR_SEEN_TOPIC": SEEN,
             "RADAR_INGESTOR_GROUP_ID": INGESTOR_GROUP,
             "RADAR_EXTRACTOR_GROUP_ID": EXTRACTOR_GROUP, "RADAR_AGGREGATOR_APP_ID": APP_ID,
             "RADAR_PROFILE": "embedded", "RADAR_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def stack(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("fuzz-stack")
    fuzz = Stack(run_dir=run_dir, bootstrap_servers=bootstrap,
                 ports={n: free_port() for n in ("ingestor", "extractor", "aggregator")},
                 extra_env=STACK_ENV | {"RADAR_INGESTOR_FEEDS_FILE": str(run_dir / "f.toml")})
    with fuzz:
        fuzz.wait_healthy(timeout=120)
        yield fuzz
GOOD_EVERY = 50  # one good record per 50 hostile ones


def metric_total(svc: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(svc.base_url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and labels.items() <= s.labels.items())


@dataclass
class Door:
    name: str
    topic: str
    model: type[Contract]
    service: str
    group: str | None  # None: read without a group (the seen topic)
    good: Callable[[int], Contract]


def _letters(n: int) -> str:
    """A name part the extractor takes as part of a company name (digits it does not)."""
    return "".join(chr(ord("a") + int(d)) for d in f"{n:04d}") + RUN.translate(
        str.maketrans("0123456789", "ghijklmnop"))


def _article(n: int) -> ArticleEvent:
    return ArticleEvent(article_id=f"fz-{RUN}-{n}", published_at=datetime(2024, 6, 1, tzinfo=UTC),
                        text=f"Fuzzard{_letters(n)} Motors Corp said it formed a joint venture "
                             f"with Probeline{_letters(n)} Cells Inc to develop hydrogen "
                             f"engines.")


def _partnership(n: int) -> PartnershipEvent:
    parties = [f"Fuzzard {RUN} {n}", f"Probeline {RUN} {n}"]
    return PartnershipEvent(event_id=PartnershipEvent.make_event_id(f"fz-{n}", parties),
                            article_id=f"fz-{RUN}-{n}", parties=parties, stage="talks",
                            confidence=0.7, published_at=datetime(2024, 6, 1, tzinfo=UTC),
                            evidence=[Evidence(sentence="they talk", start=0, end=9)])


def _link(n: int) -> CompanyLink:
    company = f"Linkfuzz {RUN} {n}"
    return CompanyLink(company=company, alliance_id=f"linkfuzz-{RUN}-{n}+other",
                       parties=[company, "Other"], stage="agreed", episode=1,
                       last_changed=datetime(2024, 6, 1, tzinfo=UTC), source_offset=n)


def _raw(n: int) -> RawDocument:
    return RawDocument(document_id=f"fz-doc-{RUN}-{n}", name="fuzz.jsonl",
                       content=_article(n).model_dump_json(include={"text", "published_at"})
                       [:-1] + f', "id": "fz-inbox-{RUN}-{n}"}}')


def _seen(n: int) -> SeenArticle:
    article_id = f"fz-seen-{RUN}-{n}"
    return SeenArticle(article_id=article_id, keys=["id:" + stable_hash(article_id)])


DOORS = [
    Door("topic news.inbox.v1 (ingestor)", INBOX, RawDocument, "ingestor", INGESTOR_GROUP,
         _raw),
    Door("topic news.seen.v1 (ingestor)", SEEN, SeenArticle, "ingestor", None, _seen),
    Door("topic news.articles.v1 (extractor)", T.articles, ArticleEvent, "extractor",
         EXTRACTOR_GROUP, _article),
    Door("topic alliances.partnerships.v1 (aggregator)", T.partnerships, PartnershipEvent,
         "aggregator", APP_ID, _partnership),
    Door("topic <app>-company-index (aggregator)", index_topic_name(APP_ID), CompanyLink,
         "aggregator", APP_ID, _link),
]


@dataclass
class Sent:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    good: Contract | None
    local: Rejected | None  # what the decoder says of it (None: it decodes)


async def _write(bootstrap: str, spec: Door, count: int, rng: random.Random) -> list[Sent]:
    producer = AIOKafkaProducer(**producer_options(kafka_settings(bootstrap)),
                                max_request_size=2_000_000)
    await producer.start()
    try:
        plan: list[tuple[bytes | None, bytes | None, Contract | None]] = []
        for i in range(count):
            good = spec.good(i)
            if i % GOOD_EVERY == 0:
                plan.append((good.key(), good.to_bytes(), good))
                continue
            value = mutate(rng, good.to_bytes())
            key = good.key() if rng.random() < 0.7 else rng.choice(
                [None, b"", b"\xff\xfe", f"other-{i}".encode()])
            if key is None and value is None:  # Kafka needs one of them
                key = b"\x00"
            plan.append((key, value, None))
        futures = [await producer.send(spec.topic, value, key=key) for key, value, _ in plan]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    out = []
    for (key, value, good), meta in zip(plan, metadata, strict=True):
        local = decode(spec.model, value)
        out.append(Sent(meta.partition, meta.offset, key, value, good,
                        local if isinstance(local, Rejected) else None))
    return out


async def _wait_consumed(bootstrap: str, spec: Door, sent: list[Sent],
                         svc: ServiceProcess, before: float) -> None:
    if spec.group is None:  # no group: count what the seen follower read
        async def read() -> bool:
            done = metric_total(svc, "radar_ingestor_seen_replayed_total") - before
            return done >= len(sent)

        await async_wait_until(read, patience(300), 0.5, f"{spec.name}: every record read")
        return
    ends: dict[int, int] = {}
    for s in sent:
        ends[s.partition] = max(ends.get(s.partition, 0), s.offset + 1)

    async def committed() -> bool:
        assert svc.alive(), f"{spec.service} died:\n{svc.tail(40)}"
        got = await committed_offsets(bootstrap, spec.group, spec.topic, sorted(ends))
        return all((got.get(p) or 0) >= end for p, end in ends.items())

    await async_wait_until(committed, patience(600), 0.5,
                           f"{spec.name}: group past every record")


@pytest.mark.parametrize("spec", DOORS, ids=[d.name.split()[1] for d in DOORS])
async def test_raw_bytes_on_every_consumed_topic(stack: Stack, spec: Door) -> None:
    svc = stack.services[spec.service]
    pid = svc.process.pid
    rng = random.Random(f"{SEED}-{spec.topic}")
    count = cases(120)
    with door(spec.name) as report:
        before_seen = metric_total(svc, "radar_ingestor_seen_replayed_total")
        before_dlq = metric_total(svc, "radar_dlq_records_total", service=spec.service,
                                  topic=spec.topic)
        sent = await _write(stack.bootstrap, spec, count, rng)
        await _wait_consumed(stack.bootstrap, spec, sent, svc, before_seen)
        report.cases += len(sent)

        assert svc.alive() and svc.process.pid == pid, svc.tail(60)
        assert svc.healthy(), f"{spec.service} unhealthy after the corpus"
        locally_rejected = [s for s in sent if s.local is not None]
        if spec.group is None:
            await _check_seen(svc, sent, before_seen, report)
            return
        letters = await _dead_letters(stack.bootstrap, spec,
                                      {(s.partition, s.offset) for s in locally_rejected})
        by_place: dict[tuple[int, int], list[DeadLetter]] = {}
        for letter in letters:
            by_place.setdefault((letter.partition, letter.offset), []).append(letter)
        ours = {(s.partition, s.offset): s for s in sent}
        assert set(by_place) <= set(ours)
        for place, found in by_place.items():
            assert len(found) == 1, f"{place}: {len(found)} dead letters"
            assert found[0].reason and found[0].service == spec.service
        for s in locally_rejected:
            found = by_place.get((s.partition, s.offset))
            assert found, f"no dead letter for {s.partition}@{s.offset}: {s.local}"
            assert found[0].reason == s.local.reason, (found[0].reason, s.local)
        for s in sent:
            if s.good is not None:
                assert (s.partition, s.offset) not in by_place, by_place[(s.partition,
                                                                          s.offset)]
        after_dlq = metric_total(svc, "radar_dlq_records_total", service=spec.service,
                                 topic=spec.topic)
        assert after_dlq - before_dlq == len(by_place)
        report.rejected += len(by_place)
        report.notes["reasons"] = sorted({f[0].reason for f in by_place.values()})
        await _check_good(stack, spec, [s.good for s in sent if s.good is not None])


async def _dead_letters(bootstrap: str, spec: Door,
                        expected: set[tuple[int, int]]) -> list[DeadLetter]:
    """Every dead letter from `spec.topic`, once those of `expected` places have all come
    (the others, for records rejected after decoding, arrive among them)."""
    dlq = TopicSettings.dlq(T.partnerships if spec.service == "aggregator" else spec.topic)
    async with TopicReader(bootstrap, dlq) as reader:
        def ours(records: list) -> list[DeadLetter]:
            return [d for d in valid(records, DeadLetter) if d.topic_name == spec.topic]

        def complete(records: list) -> bool:
            return expected <= {(d.partition, d.offset) for d in ours(records)}

        await reader.wait_for(complete, patience(120),
                              message=f"{len(expected)} dead letters from {spec.topic}")
        await reader.poll()
        return ours(reader.records)


async def _check_seen(svc: ServiceProcess, sent: list[Sent], before: float,
                      report) -> None:
    rejected = sum(1 for s in sent if s.local is not None and s.value is not None)
    counted = sum(metric_total(svc, "radar_ingestor_seen_replayed_total", result=reason)
                  for reason in ("invalid_json", "schema_violation"))
    assert counted >= rejected  # earlier tests may have added some
    report.rejected += rejected
    # Good records were applied: their stories are duplicates now.
    for s in sent:
        if s.good is None:
            continue
        resp = httpx.post(svc.base_url + "/articles", timeout=10, json={
            "id": s.good.article_id, "text": "Any text at all for a duplicate check."})
        assert resp.json()["items"][0]["status"] == "duplicate", resp.text


async def _check_good(stack: Stack, spec: Door, good: list[Contract]) -> None:
    if spec.model is ArticleEvent or spec.model is RawDocument:
        wanted = {g.article_id if isinstance(g, ArticleEvent) else
                  f"fz-inbox-{RUN}-{g.document_id.rsplit('-', 1)[1]}" for g in good}
        topic = T.partnerships if spec.model is ArticleEvent else T.articles
        model = PartnershipEvent if spec.model is ArticleEvent else ArticleEvent
        async with TopicReader(stack.bootstrap, topic) as reader:
            await reader.wait_for(lambda rs: wanted <= {m.article_id for m in valid(rs, model)},
                                  patience(120),
                                  message=f"{len(wanted)} good records through")
        return
    api = stack.services["aggregator"].base_url
    for g in good:
        path = f"/alliances/{g.key().decode()}" if isinstance(g, PartnershipEvent) else \
            f"/companies/{g.company}"
        wait_until(lambda p=path: httpx.get(api + p, timeout=10).status_code == 200, 60, 0.2,
                   f"{path} answered")
