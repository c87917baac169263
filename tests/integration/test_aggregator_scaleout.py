"""Two aggregator workers (one app id, two processes) share the partitions and answer every
query by routing to the owner; SIGKILL one and the other takes its partitions over with the
view intact and goes on processing. Own topics and app id, so nothing else interferes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.aggregator.routing import partition_for
from services.cli.stack import ServiceProcess
from shared.broker import free_port
from shared.contracts import AllianceChange, Evidence, PartnershipEvent, alliance_id_for
from tests.helpers import TopicReader, produce, valid, wait_until

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def event(article: str, parties: list[str], stage: str, day: int) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.7, published_at=T0 + timedelta(days=day),
        evidence=[Evidence(sentence=f"{article} {stage}", start=0, end=5)])


# 10 alliances over the partitions; each moves rumored -> talks; one of them to agreed.
PAIRS = [[f"Scale{i} Corp", f"Scale{i + 1} Corp"] for i in range(10)]
EVENTS = [event(f"sc-{i}-{stage}", pair, stage, day) for i, pair in enumerate(PAIRS)
          for stage, day in (("rumored", i), ("talks", i + 20))]
EVENTS.append(event("sc-0-agreed", PAIRS[0], "agreed", 40))


class Cluster:
    def __init__(self, bootstrap: str, run_dir: Path, store: str, partitions: int) -> None:
        tag = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.partnerships, self.changes = f"scale-{tag}.partnerships", f"scale-{tag}.changes"
        self.env = dict(os.environ) | {
            "RADAR_BOOTSTRAP_SERVERS": bootstrap, "RADAR_PROFILE": "embedded",
            "RADAR_AGGREGATOR_APP_ID": f"radar-scale-{tag}",
            "RADAR_TOPIC_PARTNERSHIPS": self.partnerships, "RADAR_TOPIC_CHANGES": self.changes,
            "RADAR_TOPIC_STATE": f"scale-{tag}.state",
            "RADAR_TOPIC_PARTITIONS": str(partitions), "PYTHONUNBUFFERED": "1",
            "RADAR_AGGREGATOR_STORE": store,
        }
        self.workers = [self._worker(run_dir, name) for name in ("a", "b")]

    def _worker(self, run_dir: Path, name: str) -> ServiceProcess:
        port = free_port()
        env = self.env | {"RADAR_AGGREGATOR_HOST": "127.0.0.1",
                          "RADAR_AGGREGATOR_PORT": str(port),
                          "RADAR_AGGREGATOR_DATA_DIR": str(run_dir / name)}
        return ServiceProcess("aggregator", port, "127.0.0.1", run_dir / f"{name}.log", env)

    def health(self, worker: ServiceProcess) -> dict:
        try:
            return httpx.get(f"{worker.base_url}/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}

    def view(self, worker: ServiceProcess) -> dict | None:
        resp = httpx.get(f"{worker.base_url}/alliances", timeout=10)
        return resp.json() if resp.status_code == 200 else None


def answer(url: str, timeout: float = 30) -> httpx.Response:
    """The 200 answer of `url`; a 503 (rebalancing) is waited out, anything else fails."""
    def ok() -> httpx.Response | None:
        resp = httpx.get(url, timeout=10)
        assert resp.status_code in (200, 503), (url, resp.status_code, resp.text)
        return resp if resp.status_code == 200 else None

    return wait_until(ok, timeout, 0.2, f"200 from {url}")


# Both table stores: on disk (the default; the partitions taken over are restored into
# RocksDB, index included) and in memory; and every topic of the app at 16 partitions (what
# `bench.view` runs: the embedded broker's fetch cost is per partition, README "The view at
# scale"), where the fence, the company index and the takeover span 16.
@pytest.fixture(scope="module", params=[("rocksdb://", 4), ("memory://", 4), ("rocksdb://", 16)],
                ids=["rocksdb-4", "memory-4", "rocksdb-16"])
def cluster(bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(bootstrap, tmp_path_factory.mktemp("scaleout"), *request.param)
    try:
        for worker in c.workers:
            worker.start()
        yield c
    finally:
        for worker in c.workers:
            worker.stop()


def test_two_workers_share_partitions_route_queries_and_survive_a_kill(cluster: Cluster):
    a, b = cluster.workers
    partitions = cluster.partitions

    def split() -> tuple[list, list] | None:
        for w in (a, b):
            if not w.alive():
                raise AssertionError(f"worker died:\n{w.tail()}")
        ha, hb = cluster.health(a), cluster.health(b)
        if ha.get("status") == hb.get("status") == "ready" and ha["partitions"] \
                and hb["partitions"] and len(ha["workers"]) == 2:
            return ha["partitions"], hb["partitions"]
        return None

    parts_a, parts_b = wait_until(split, 90, 0.2, "both workers ready, partitions split")
    assert sorted(parts_a + parts_b) == list(range(partitions))

    asyncio.run(produce(cluster.bootstrap, cluster.partnerships,
                        [(e.key(), e.to_bytes()) for e in EVENTS]))

    def complete(worker: ServiceProcess) -> dict | None:
        view = cluster.view(worker)
        if view and view["count"] == len(PAIRS) and \
                {r["stage"] for r in view["alliances"]} == {"talks", "agreed"}:
            return view
        return None

    before = wait_until(lambda: complete(a), 60, 0.2, "the whole view from worker a")
    assert answer(f"{b.base_url}/alliances").json() == before, "both gather the same view"

    # Paging: each worker lists its first `limit` after the cursor, the merge keeps the
    # first `limit`; following next_cursor from either worker gives the view once, in order.
    for worker in (a, b):
        listed, cursor = [], None
        while True:
            page = answer(f"{worker.base_url}/alliances?limit=3"
                          + (f"&cursor={cursor}" if cursor else "")).json()
            assert page["count"] <= 3 and page["partitions"] == list(range(partitions))
            listed += page["alliances"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert listed == before["alliances"]
    wait_until(lambda: sorted(c["key"] for c in answer(
        f"{b.base_url}/companies?q=scale&limit=100").json()["companies"]) == sorted(
        f"scale{i}-corp" for i in range(11)), 30, 0.2, "every company in the type-ahead")

    # Single-key queries reach the owner, whichever worker is asked.
    urls = {p: (a.base_url if p in parts_a else b.base_url) for p in range(partitions)}
    owners_used = set()
    singles = {}
    for row in before["alliances"]:
        key = row["alliance_id"]
        owner = urls[partition_for(key.encode(), partitions)]
        answers = [answer(f"{w.base_url}/alliances/{key}/history") for w in (a, b)]
        assert [r.headers["X-Radar-Worker"] for r in answers] == [owner, owner]
        assert answers[0].json() == answers[1].json()
        owners_used.add(owner)
        singles[key] = answers[0].json()
    assert owners_used == {a.base_url, b.base_url}

    def companies(worker: ServiceProcess) -> dict:
        return {i: answer(f"{worker.base_url}/companies/Scale{i} Corp").json()
                for i in range(11)}

    index = wait_until(lambda: (c := companies(a))[0]["partners_by_stage"] ==
                       {"agreed": ["Scale1 Corp"]} and c, 30, 0.2, "company index")
    assert companies(b) == index

    # SIGKILL b: a takes every partition over; the view, histories and index are intact.
    b.kill()

    def alone() -> dict | None:
        health = cluster.health(a)
        if health.get("partitions") == list(range(partitions)) and \
                health.get("workers") == [a.base_url]:
            return cluster.view(a)
        return None

    after = wait_until(alone, 60, 0.25, "worker a owning every partition")
    assert after == before
    for key, history in singles.items():
        resp = answer(f"{a.base_url}/alliances/{key}/history")
        assert resp.headers["X-Radar-Worker"] == a.base_url and resp.json() == history
    assert companies(a) == index

    # ... and a processes new events of b's former partitions.
    moved = next(p for p in PAIRS
                 if partition_for(alliance_id_for(p).encode(), partitions) in parts_b)
    late = event("sc-late-active", moved, "active", 60)  # a stage change for any pair
    asyncio.run(produce(cluster.bootstrap, cluster.partnerships, [(late.key(), late.to_bytes())]))
    wait_until(lambda: answer(f"{a.base_url}/alliances/{late.alliance_id}").json()["stage"]
               == "active", 30, 0.2, "an event of a moved partition processed by the survivor")

    async def changes() -> list[AllianceChange]:
        async with TopicReader(cluster.bootstrap, cluster.changes) as reader:
            await reader.wait_for(lambda rs: len(rs) >= len(EVENTS) + 1, 30, "changes")
            return valid(reader.records, AllianceChange)

    emitted = asyncio.run(changes())
    assert len(emitted) == len(EVENTS) + 1
    assert len({c.change_id for c in emitted}) == len(emitted), "a transition emitted twice"
