"""End-to-end figures on a real stack: embedded broker plus the three service processes.

Throughput: N articles POSTed to the ingestor as fast as it takes them (JSON Lines, 100 per
request); the clock runs from the first request to the first moment the extractor has
consumed every published article *and* the aggregator has consumed every partnership event
the extractor produced (both read from the services' own /metrics counters, polled every
0.1 s, minus their values before the run).

Latency: one article per request at a fixed offered load (paced by absolute send times, so a
slow request does not lower the load). For every AllianceChange caused by those articles,
latency = the change's arrival at a plain consumer of alliances.changes.v1 minus the
article's `fetched_at` (the ingestor's intake time, read from news.articles.v1).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.corpus import Article
from bench.stats import buckets, cpu_seconds, parse_metrics, peak_rss_mb, rate, total
from services.cli.stack import SERVICES, Stack
from shared.auth import bearer_headers
from shared.broker import free_port
from shared.contracts import AllianceChange, ArticleEvent, PartnershipEvent
from shared.kafka import Rejected, consumer_options, decode
from shared.settings import KafkaSettings, TopicSettings, auth

POLL_S = 0.1
CHUNK = 100
#: How often the latency run samples the queues (two /metrics scrapes each).
QUEUE_SAMPLE_S = 0.5


@dataclass
class Progress:
    """The counters that say how far the pipeline got, from the services' /metrics."""

    extractor_consumed: float
    extractor_produced: float
    aggregator_consumed: float

    def minus(self, base: Progress) -> Progress:
        return Progress(self.extractor_consumed - base.extractor_consumed,
                        self.extractor_produced - base.extractor_produced,
                        self.aggregator_consumed - base.aggregator_consumed)


@dataclass
class ThroughputFigures:
    sent: int
    published: int
    seconds: float
    ingest_seconds: float
    partnership_events: int
    #: CPU seconds per process during the run (as LatencyFigures.cpu_seconds): what an
    #: article costs when it arrives 100 to a request and is drained in big batches.
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def articles_per_s(self) -> float:
        return rate(self.published, self.seconds)

    @property
    def ingest_articles_per_s(self) -> float:
        return rate(self.published, self.ingest_seconds)


#: The legs of an article's trip, each from the previous timestamp (Kafka CreateTime of the
#: record each service produced, then the change's arrival at the benchmark's consumer).
HOPS = ("ingestor: fetched_at → article record", "extractor: article → partnership record",
        "aggregator: partnership → change record", "delivery: change record → consumer")


@dataclass
class LatencyFigures:
    offered_per_s: float
    achieved_per_s: float
    sent: int
    seconds_from_fetch: list[float] = field(default_factory=list)
    seconds_from_request: list[float] = field(default_factory=list)
    hops: dict[str, list[float]] = field(default_factory=lambda: {h: [] for h in HOPS})
    #: Reference for the broker and fetch alone: article record CreateTime -> its arrival
    #: at the benchmark's own consumer (which polls continuously).
    article_visible: list[float] = field(default_factory=list)
    #: CPU seconds each process of the stack used during the run (services, the largest
    #: extractor worker's share summed over workers as "extractor_workers", the broker):
    #: what the stream cost, whatever else the machine was doing.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: The extractor's handling time per poll (decode, extraction in the workers; not the
    #: fetch, the wait for a free worker or the publishing) over the run: cumulative
    #: histogram buckets {upper bound in s: count}, from its /metrics.
    extractor_batch_seconds: dict[float, float] = field(default_factory=dict)
    #: Where the queue is while the articles are offered: (seconds since the first send,
    #: articles sent but not yet consumed by the extractor, partnership events produced but
    #: not yet consumed by the aggregator), sampled every QUEUE_SAMPLE_S.
    queue: list[tuple[float, float, float]] = field(default_factory=list)
    #: Seconds from the last send to the moment everything was through (what the queue
    #: left at the end of the offered load took to drain).
    drain_seconds: float = math.nan
    #: Articles the extractor consumed per second over the offered window's second half:
    #: the rate the stack kept up with (equal to the offered rate when it kept up).
    kept_up_per_s: float = math.nan

    def queue_peak(self) -> tuple[float, float]:
        """The largest queue in front of the extractor and of the aggregator."""
        return (max((q[1] for q in self.queue), default=math.nan),
                max((q[2] for q in self.queue), default=math.nan))


class Bench:
    """A stack on free ports with its own broker, and the probes the measurements use."""

    def __init__(self, run_dir: Path, stack: Stack | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.topics = TopicSettings()
        self.stack = stack or Stack(
            run_dir=run_dir, broker_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            extra_env={"RADAR_PROFILE": "embedded", "RADAR_LOG_LEVEL": "WARNING"}
            | (env or {}))
        #: The probes (/metrics, /health): a few requests a second.
        self.http = httpx.AsyncClient(timeout=60)
        #: The load itself: aiohttp's client costs 0.15 ms of CPU per POST here against
        #: httpx's 1.75 ms (1,500 POSTs of 3 kB to a local aiohttp server), and the
        #: benchmark shares the two cores with the stack it measures. Made in the event loop
        #: on the first POST.
        self.post_timeout_s = 60.0
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> Bench:
        self.stack.__enter__()
        self.stack.wait_healthy(timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.__exit__(*exc)

    def url(self, service: str, path: str) -> str:
        return self.stack.services[service].base_url + path

    async def progress(self) -> Progress:
        extractor, aggregator = await asyncio.gather(
            self.http.get(self.url("extractor", "/metrics")),
            self.http.get(self.url("aggregator", "/metrics")))
        ex, agg = parse_metrics(extractor.text), parse_metrics(aggregator.text)
        return Progress(
            total(ex, "radar_messages_consumed_total", topic=self.topics.articles),
            total(ex, "radar_messages_produced_total", topic=self.topics.partnerships),
            total(agg, "radar_messages_consumed_total", topic=self.topics.partnerships))

    async def drained(self, base: Progress, published: int, timeout: float) -> float:
        """Wait until everything published after `base` went through; its monotonic time."""
        deadline = time.monotonic() + timeout
        done = Progress(0, 0, 0)
        while time.monotonic() < deadline:
            done = (await self.progress()).minus(base)
            if (done.extractor_consumed >= published
                    and done.aggregator_consumed >= done.extractor_produced):
                return time.monotonic()
            await asyncio.sleep(POLL_S)
        raise TimeoutError(f"pipeline not drained after {timeout}s: {done} of {published}")

    async def post(self, articles: list[Article]) -> int:
        """POST articles as JSON Lines; how many the ingestor published."""
        body = "\n".join(a.to_json() for a in articles).encode()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=bearer_headers(auth().ingestor_token),
                timeout=aiohttp.ClientTimeout(total=self.post_timeout_s))
        async with self._session.post(self.url("ingestor", "/articles"), data=body) as response:
            if response.status not in (202, 400):
                raise RuntimeError(f"ingestor answered {response.status}: "
                                   f"{await response.text()}")
            answer = await response.json()
        return int(answer.get("published", answer.get("accepted", 0)))

    async def warm_up(self, articles: list[Article]) -> None:
        base = await self.progress()
        published = await self.post(articles)
        await self.drained(base, published, timeout=120)

    async def throughput(self, articles: list[Article], timeout: float = 600
                         ) -> ThroughputFigures:
        base = await self.progress()
        cpu_before = self.cpu_seconds()
        started = time.monotonic()
        published = 0
        for i in range(0, len(articles), CHUNK):
            published += await self.post(articles[i:i + CHUNK])
        ingested = time.monotonic()
        finished = await self.drained(base, published, timeout)
        cpu_after = self.cpu_seconds()
        events = (await self.progress()).minus(base).extractor_produced
        return ThroughputFigures(len(articles), published, finished - started,
                                 ingested - started, int(events),
                                 cpu_seconds=cpu_delta(cpu_before, cpu_after))

    async def latency(self, articles: list[Article], per_second: float, batch: int = 1,
                      settle_s: float = 2.0) -> LatencyFigures:
        """`batch` articles per request (1: each article arrives on its own), requests
        paced so that `per_second` articles are offered."""
        ids = {a.id for a in articles}
        fetched: dict[str, float] = {}
        requested: dict[str, float] = {}
        article_at: dict[str, float] = {}
        partnership_at: dict[str, float] = {}
        arrivals: dict[str, tuple[str, float, float]] = {}
        visible: list[float] = []
        consumer = await self._tail([self.topics.articles, self.topics.partnerships,
                                     self.topics.changes])
        stop = asyncio.Event()

        async def collect() -> None:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for tp, records in batches.items():
                    for record in records:
                        created = record.timestamp / 1000
                        if tp.topic == self.topics.articles:
                            article = decode(ArticleEvent, record.value)
                            if not isinstance(article, Rejected) and article.article_id in ids:
                                fetched[article.article_id] = article.fetched_at.timestamp()
                                article_at[article.article_id] = created
                                visible.append(now - created)
                        elif tp.topic == self.topics.partnerships:
                            event = decode(PartnershipEvent, record.value)
                            if not isinstance(event, Rejected) and event.article_id in ids:
                                partnership_at.setdefault(event.article_id, created)
                        else:
                            change = decode(AllianceChange, record.value)
                            if not isinstance(change, Rejected) and change.article_id in ids:
                                arrivals.setdefault(change.change_id,
                                                    (change.article_id, created, now))

        async def send(chunk: list[Article]) -> int:
            now = time.time()
            requested.update((a.id, now) for a in chunk)
            return await self.post(chunk)

        collector = asyncio.create_task(collect())
        cpu_before = self.cpu_seconds()
        batches_before = await self.extractor_batches()
        queue: list[tuple[float, float, float]] = []
        progress: list[tuple[float, float]] = []  # (seconds, extractor consumed)
        sent = 0
        sending = True

        async def watch(base: Progress, started: float) -> None:
            while sending:
                done = (await self.progress()).minus(base)
                at = time.monotonic() - started
                queue.append((round(at, 2), max(0.0, sent - done.extractor_consumed),
                              max(0.0, done.extractor_produced - done.aggregator_consumed)))
                progress.append((at, done.extractor_consumed))
                await asyncio.sleep(QUEUE_SAMPLE_S)

        try:
            base = await self.progress()
            started = time.monotonic()
            watcher = asyncio.create_task(watch(base, started))
            sends = []
            for i in range(0, len(articles), batch):
                delay = started + i / per_second - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sends.append(asyncio.create_task(send(articles[i:i + batch])))
                sent += len(articles[i:i + batch])
            last_sent = time.monotonic()
            sending = False
            await watcher
            published = sum(await asyncio.gather(*sends))
            drained_at = await self.drained(base, published, timeout=300)
            await asyncio.sleep(settle_s)  # the last changes' trip to the plain consumer
        finally:
            sending = False
            stop.set()
            await collector
            await consumer.stop()
        cpu_after = self.cpu_seconds()
        batches_after = await self.extractor_batches()
        figures = LatencyFigures(per_second, rate(len(articles) - batch, last_sent - started),
                                 len(articles), article_visible=visible,
                                 cpu_seconds=cpu_delta(cpu_before, cpu_after),
                                 extractor_batch_seconds={
                                     bound: count - batches_before.get(bound, 0.0)
                                     for bound, count in batches_after.items()},
                                 queue=queue, drain_seconds=drained_at - last_sent,
                                 kept_up_per_s=kept_up(progress))
        for article_id, change_at, arrived in arrivals.values():
            figures.seconds_from_request.append(arrived - requested[article_id])
            if article_id not in fetched:
                continue
            figures.seconds_from_fetch.append(arrived - fetched[article_id])
            if article_id in article_at and article_id in partnership_at:
                legs = (fetched[article_id], article_at[article_id],
                        partnership_at[article_id], change_at, arrived)
                for hop, start, end in zip(HOPS, legs, legs[1:], strict=False):
                    figures.hops[hop].append(end - start)
        return figures

    async def _tail(self, topics: list[str]) -> AIOKafkaConsumer:
        """A group-less consumer positioned at the current end of `topics`."""
        kafka = KafkaSettings(bootstrap_servers=self.stack.bootstrap, profile="embedded")
        consumer = AIOKafkaConsumer(**consumer_options(kafka))
        await consumer.start()
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in topics
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not parts:
            await consumer.stop()
            raise RuntimeError(f"topics {topics} have no partitions yet")
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        return consumer

    async def extractor_batches(self) -> dict[float, float]:
        """The extractor's poll-handling histogram so far (cumulative buckets)."""
        text = (await self.http.get(self.url("extractor", "/metrics"))).text
        return buckets(parse_metrics(text), "radar_batch_processing_seconds",
                       service="extractor")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each service, the extractor's workers (summed), the
        broker and this benchmark's own process (the load it generates and its consumer
        share the cores)."""
        out = {name: cpu_seconds(pid) for name, pid in self.pids().items()}
        out["bench"] = time.process_time()
        if self.stack.broker is not None and self.stack.broker.process is not None:
            out["broker"] = cpu_seconds(self.stack.broker.process.pid)
        health = httpx.get(self.url("extractor", "/health"), timeout=5).json()
        out["extractor_workers"] = sum(cpu_seconds(pid)
                                       for pid in health.get("worker_pids", []))
        return out

    def peak_rss_mb(self) -> dict[str, float]:
        out = {name: peak_rss_mb(svc.process.pid)
               for name, svc in self.stack.services.items() if svc.process is not None}
        if self.stack.broker is not None and self.stack.broker.process is not None:
            out["broker"] = peak_rss_mb(self.stack.broker.process.pid)
        # The extractor's worker processes (each holds a pipeline): the largest of them.
        health = httpx.get(self.url("extractor", "/health"), timeout=5).json()
        workers = [peak_rss_mb(pid) for pid in health.get("worker_pids", [])]
        if workers:
            out["extractor_worker"] = max(workers)
        return out

    def pids(self) -> dict[str, int]:
        return {name: svc.process.pid for name, svc in self.stack.services.items()
                if svc.process is not None}

    async def close(self) -> None:
        await self.http.aclose()
        if self._session is not None:
            await self._session.close()


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def kept_up(progress: list[tuple[float, float]]) -> float:
    """Articles consumed per second over the second half of (seconds, consumed) samples:
    the rate the extractor kept up with while the load was offered (the first half is the
    start-up of the queue)."""
    if len(progress) < 4:
        return math.nan
    (t0, c0), (t1, c1) = progress[len(progress) // 2], progress[-1]
    return rate(c1 - c0, t1 - t0)
