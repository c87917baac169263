"""One chaos run: a broker behind a faulty proxy, the three services, a paced stream of news
POSTed with retries, a fault plan carried out while it flows, then a wait until every
consumer group has committed everything, and a snapshot of what came out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.corpus import Article
from chaos.faults import Fault
from chaos.invariants import Record, Snapshot
from chaos.proxy import FaultyProxy
from services.aggregator.index import index_topic_name
from services.cli.stack import SERVICES, Stack
from shared.broker import EmbeddedBroker, free_port
from shared.kafka import consumer_options, make_consumer
from shared.pages import every_row_async
from shared.settings import KafkaSettings, TopicSettings

CHUNK = 25
APP_ID = "radar-aggregator"
GROUPS = {"radar-extractor": ("articles",), APP_ID: ("partnerships", "index")}


@dataclass
class Recovery:
    """Seconds from the end of a fault (restart, SIGCONT, link back) to healthy again."""

    kind: str
    service: str
    seconds: float


@dataclass
class RunReport:
    name: str
    seconds: float = 0.0
    stream_seconds: float = 0.0
    drain_seconds: float = 0.0
    posts: int = 0
    post_retries: int = 0
    faults: list[Fault] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    health_stall_reports: int = 0


class Cluster:
    """Broker, proxy and services of one run, on free loopback ports."""

    def __init__(self, run_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.topics = TopicSettings()
        broker_port, proxy_port = free_port(), free_port()
        self.proxy = FaultyProxy(target_port=broker_port, listen_port=proxy_port)
        self.broker = EmbeddedBroker(port=broker_port, advertised=f"127.0.0.1:{proxy_port}",
                                     log_path=run_dir / "broker.log")
        self.stack = Stack(run_dir=run_dir, bootstrap_servers=self.broker.bootstrap_servers,
                           ports={n: free_port() for n in SERVICES},
                           extra_env={"RADAR_PROFILE": "embedded", "RADAR_LOG_LEVEL": "INFO",
                                      "RADAR_INGESTOR_FEEDS_FILE": str(run_dir / "feeds.toml")}
                           | (extra_env or {}))

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def __enter__(self) -> Cluster:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.proxy.start()
        try:
            self.broker.start()
            self.stack.start()
            self.stack.wait_healthy(timeout=180)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for svc in self.stack.services.values():  # a stopped process cannot handle SIGTERM
            if svc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(svc.process.pid, signal.SIGCONT)
        self.stack.stop()
        self.broker.stop()
        self.proxy.stop()

    def url(self, service: str, path: str = "") -> str:
        return self.stack.services[service].base_url + path

    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap, profile="embedded")


# ------------------------------------------------------------------ streaming


async def stream(cluster: Cluster, articles: list[Article], rate: float | None,
                 report: RunReport, published: set[str], deadline_s: float = 600.0) -> None:
    """POST `articles` in chunks, in order, paced at `rate` articles/s (None: as fast as
    taken); a chunk that fails (no answer, 5xx, 503 while starting) is sent again until
    answered. An article counts as published when an answer says so, or says it is a
    duplicate of itself (an earlier attempt published it, and its answer was lost)."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(0, len(articles), CHUNK):
            if rate:
                wait = started + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            chunk = articles[i:i + CHUNK]
            body = "\n".join(a.to_json() for a in chunk).encode()
            give_up = time.monotonic() + deadline_s
            while True:
                report.posts += 1
                try:
                    resp = await client.post(cluster.url("ingestor", "/articles"), content=body)
                    if resp.status_code == 202:
                        break
                    if resp.status_code < 500:
                        raise RuntimeError(f"ingestor refused a chunk: {resp.status_code} "
                                           f"{resp.text[:300]}")
                except httpx.HTTPError:
                    pass
                report.post_retries += 1
                if time.monotonic() > give_up:
                    raise TimeoutError(f"chunk {i} not taken in after {deadline_s}s")
                await asyncio.sleep(0.5)
            for item in resp.json()["items"]:
                article_id = item.get("article_id")
                if item["status"] == "published" or (item["status"] == "duplicate"
                                                     and item.get("duplicate_of") == article_id):
                    published.add(article_id)
    report.stream_seconds = time.monotonic() - started


# ------------------------------------------------------------------ faults


def _health(url: str) -> int:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return 0


async def wait_healthy(cluster: Cluster, name: str, since: float, timeout: float = 180,
                       down: set[str] | frozenset[str] = frozenset()) -> float:
    """Seconds from `since` until `name` answers /health 200 (`down`: services another
    fault has taken down on purpose, so a dead process is expected for now)."""
    url = cluster.url(name, "/health")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_health, url) == 200:
            return time.monotonic() - since
        svc = cluster.stack.services[name]
        if not svc.alive() and name not in down:
            raise RuntimeError(f"{name} exited with {svc.process.returncode}:\n{svc.tail()}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{name} not healthy {timeout}s after a fault")


class Injector:
    """Carries out a fault plan against a cluster; a service already down when its fault
    comes is left alone (the plan says what may happen, not that faults stack up)."""

    def __init__(self, cluster: Cluster, report: RunReport) -> None:
        self.cluster = cluster
        self.report = report
        self.down: set[str] = set()
        self.tasks: list[asyncio.Task] = []

    async def run(self, faults: list[Fault], log: Callable[[str], None]) -> None:
        started = time.monotonic()
        for fault in faults:
            wait = started + fault.at_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            log(f"fault {fault.label()}")
            self.report.faults.append(fault)
            self.tasks.append(asyncio.create_task(self.apply(fault)))
        await asyncio.gather(*self.tasks)

    async def apply(self, fault: Fault) -> None:
        proxy = self.cluster.proxy
        if fault.kind == "cut":
            proxy.cut()
            await self._after_link_fault(fault, time.monotonic())
        elif fault.kind == "delay":
            proxy.delay(fault.delay_s, fault.duration_s)
            await asyncio.sleep(fault.duration_s)
            await self._after_link_fault(fault, time.monotonic())
        elif fault.kind == "refuse":
            proxy.refuse(fault.duration_s)
            await asyncio.sleep(fault.duration_s)
            await self._after_link_fault(fault, time.monotonic())
        else:
            targets = [t for t in fault.targets if t not in self.down]
            self.down.update(targets)
            try:
                await asyncio.gather(*(self._process_fault(fault, t) for t in targets))
            finally:
                self.down.difference_update(targets)

    async def _process_fault(self, fault: Fault, name: str) -> None:
        svc = self.cluster.stack.services[name]
        if fault.kind == "kill":
            await asyncio.to_thread(svc.kill, signal.SIGKILL)
            await asyncio.sleep(fault.duration_s)
            svc.start()
        else:
            os.kill(svc.process.pid, signal.SIGSTOP)
            await asyncio.sleep(fault.duration_s)
            os.kill(svc.process.pid, signal.SIGCONT)
        back = time.monotonic()
        seconds = await wait_healthy(self.cluster, name, back, down=self.down - {name})
        self.report.recoveries.append(Recovery(fault.kind, name, round(seconds, 2)))

    async def _after_link_fault(self, fault: Fault, back: float) -> None:
        for name in SERVICES:
            if name not in self.down:
                seconds = await wait_healthy(self.cluster, name, back, down=self.down)
                self.report.recoveries.append(Recovery(fault.kind, name, round(seconds, 2)))


# ------------------------------------------------------------------ drained?


async def _offsets(cluster: Cluster, topic_names: list[str]) -> tuple[
        dict[TopicPartition, int], dict[str, dict[TopicPartition, int | None]]]:
    settings = cluster.kafka()
    reader = AIOKafkaConsumer(**consumer_options(settings))
    await reader.start()
    try:
        await reader.topics()
        tps = [TopicPartition(t, p) for t in topic_names
               for p in sorted(reader.partitions_for_topic(t) or ())]
        ends = await reader.end_offsets(tps) if tps else {}
    finally:
        await reader.stop()
    committed: dict[str, dict[TopicPartition, int | None]] = {}
    for group, names in GROUPS.items():
        consumer = make_consumer(settings, group_id=group, client_id="radar-chaos-offsets")
        await consumer.start()
        try:
            wanted = {_topic(cluster, n) for n in names}
            committed[group] = {tp: await consumer.committed(tp) for tp in tps
                                if tp.topic in wanted}
        finally:
            await consumer.stop()
    return ends, committed


def _topic(cluster: Cluster, name: str) -> str:
    return index_topic_name(APP_ID) if name == "index" else getattr(cluster.topics, name)


async def behind(cluster: Cluster) -> dict[str, dict[str, tuple[int | None, int]]]:
    """Group -> partition -> (committed, end) wherever a group has not committed the end."""
    names = [cluster.topics.articles, cluster.topics.partnerships, index_topic_name(APP_ID)]
    ends, committed = await _offsets(cluster, names)
    out: dict[str, dict[str, tuple[int | None, int]]] = {}
    for group, offsets in committed.items():
        lagging = {f"{tp.topic}[{tp.partition}]": (c, ends[tp])
                   for tp, c in offsets.items() if (c or 0) < ends[tp]}
        if lagging:
            out[group] = lagging
    return out


async def committed_by(cluster: Cluster, group: str) -> dict[str, int | None]:
    """The offsets `group` has committed on the topics the suite watches, read from the
    broker directly (not through the faulty link)."""
    names = [cluster.topics.articles, cluster.topics.partnerships, index_topic_name(APP_ID)]
    _, committed = await _offsets(cluster, names)
    return {f"{tp.topic}[{tp.partition}]": c for tp, c in committed.get(group, {}).items()}


async def wait_drained(cluster: Cluster, timeout: float, report: RunReport,
                       log: Callable[[str], None], limit_s: float = 3600) -> None:
    """Until every group has committed every record. A slow machine only makes this longer:
    it gives up when no committed offset has moved for `timeout` seconds (a stuck partition,
    reported with what /health said about it), or after `limit_s` in all."""
    started = time.monotonic()
    last: dict = {}
    moved = time.monotonic()
    while time.monotonic() - started < limit_s:
        now = await behind(cluster)
        if not now:
            report.drain_seconds = time.monotonic() - started
            return
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > timeout:
            break
        await asyncio.sleep(1.0)
    report.stalled = [f"{g}: {p} committed {c} of {e}" for g, parts in last.items()
                      for p, (c, e) in parts.items()]
    health = await asyncio.to_thread(_health, cluster.url("aggregator", "/health"))
    log(f"not drained ({time.monotonic() - started:.0f}s): {report.stalled}; "
        f"aggregator /health {health}")
    report.health_stall_reports = int(health == 503)


# ------------------------------------------------------------------ snapshot


async def read_topic(cluster: Cluster, topic: str) -> list[Record]:
    """Every record of `topic`, per partition in offset order (no group)."""
    consumer = AIOKafkaConsumer(**consumer_options(cluster.kafka()))
    await consumer.start()
    try:
        await consumer.topics()
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                out.extend(Record(r.partition, r.offset, r.timestamp, r.key, r.value)
                           for r in records if r.offset < ends[tp])
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def snapshot(cluster: Cluster, published: set[str]) -> Snapshot:
    t = cluster.topics
    snap = Snapshot(published=set(published))
    snap.partnerships = await read_topic(cluster, t.partnerships)
    snap.changes = await read_topic(cluster, t.changes)
    for topic in (t.dlq(t.articles), t.dlq(t.partnerships)):
        snap.dead_letters[topic] = len(await read_topic(cluster, topic))
    async with httpx.AsyncClient(timeout=30) as client:
        async def get(path: str, params: dict[str, str] | None = None) -> dict:
            for _ in range(120):
                resp = await client.get(cluster.url("aggregator", path), params=params)
                if resp.status_code != 503:
                    resp.raise_for_status()
                    return resp.json()
                await asyncio.sleep(0.5)
            raise TimeoutError(f"{path} kept answering 503")

        rows = await every_row_async(lambda params: get("/alliances", params))
        snap.view = {r["alliance_id"]: r for r in rows}
        limit = asyncio.Semaphore(8)

        async def details(alliance_id: str) -> None:
            async with limit:
                history = await get(f"/alliances/{alliance_id}/history")
            snap.observations[alliance_id] = [o["event_id"] for o in history["observations"]]

        await asyncio.gather(*(details(a) for a in snap.view))
        companies = sorted({p for r in rows for p in r["parties"]})

        async def company(name: str) -> None:
            async with limit:
                resp = await client.get(cluster.url("aggregator", f"/companies/{name}"))
            if resp.status_code == 200:
                body = resp.json()
                snap.companies[body["key"]] = {a["alliance_id"]: a["stage"]
                                               for a in body["alliances"]}
            else:
                snap.companies[name] = {"<status>": str(resp.status_code)}

        await asyncio.gather(*(company(c) for c in companies))
    return snap


def save(snap: Snapshot, path: Path) -> None:
    """The snapshot as JSON, for a look after the fact."""
    path.write_text(json.dumps({
        "published": sorted(snap.published), "view": snap.view,
        "observations": snap.observations, "companies": snap.companies,
        "dead_letters": snap.dead_letters,
        "changes": [[r.partition, r.offset, r.timestamp, (r.value or b"").decode()]
                    for r in snap.changes],
        "partnerships": [[r.partition, r.offset, (r.value or b"").decode()]
                         for r in snap.partnerships]}, indent=1))


# ------------------------------------------------------------------ one run


def run_once(name: str, run_dir: Path, articles: list[Article], faults: list[Fault],
             rate: float | None, drain_timeout: float, log: Callable[[str], None],
             extra_env: dict[str, str] | None = None) -> tuple[Snapshot, RunReport]:
    report = RunReport(name)
    started = time.monotonic()
    log(f"{name}: starting broker, proxy and services in {run_dir}")
    with Cluster(run_dir, extra_env) as cluster:
        async def go() -> Snapshot:
            published: set[str] = set()
            injector = Injector(cluster, report)
            faults_done = asyncio.create_task(injector.run(faults, log))
            try:
                await stream(cluster, articles, rate, report, published)
                log(f"{name}: {len(articles)} articles sent in {report.stream_seconds:.0f}s "
                    f"({report.post_retries} retried POSTs); waiting for the faults to end")
                await faults_done
            except BaseException:
                faults_done.cancel()
                raise
            await asyncio.gather(*(wait_healthy(cluster, s, time.monotonic())
                                   for s in SERVICES))
            log(f"{name}: waiting until every group has committed every record")
            await wait_drained(cluster, drain_timeout, report, log)
            return await snapshot(cluster, published)

        snap = asyncio.run(go())
    save(snap, run_dir / "snapshot.json")
    report.seconds = time.monotonic() - started
    log(f"{name}: done in {report.seconds:.0f}s")
    return snap, report
