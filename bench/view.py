"""`python -m bench.view`: does the alliance view stay fast as it grows?

Starts the embedded broker and the aggregator only, feeds N generated PartnershipEvents
(N alliances over N/5 companies, one event each) straight onto alliances.partnerships.v1,
and measures:
- fold throughput: events/s from the first send until the aggregator has consumed them all
  (its own radar_messages_consumed_total);
- memory per alliance: the aggregator's resident memory after the fold minus before it,
  over N (tables, company index, Faust's buffers: everything the view costs);
- query latency p50/p99, sequential requests: one alliance, one company, the first page of
  the list (`/alliances?limit=100`), a filtered page (`&company=`), the graph two hops
  around one company (`/graph?company=&depth=2`);
- memory along the fold: the aggregator's RSS at every tenth of the events (`rss_samples`:
  [events folded, MB]), and the size of its data directory (the tables on disk);
- restore: SIGKILL the aggregator, start it again, seconds until it is healthy and every
  sampled alliance answers again (rocksdb://: the tables are on disk, the changelog tail
  after their persisted offsets is replayed; memory://: rebuilt from the whole changelogs);
  with rocksdb://, also after a SIGKILL that loses the data directory too (a new machine,
  or a worker taking the partitions over: the whole changelogs into RocksDB).

`--store` picks the aggregator's table store (RADAR_AGGREGATOR_STORE); `--partitions` the
partitions of every topic of the app (RADAR_TOPIC_PARTITIONS: the input, the company index
and the changelogs, which the tables are co-partitioned with). Along the fold the broker's
CPU seconds and RSS are sampled with the aggregator's (`broker_samples`), and the fold's
rate per tenth of the events is reported (`fold_tenths_events_per_s`): the embedded broker's
cost per fetch grows with the records a partition holds (README "Why the broker slows as it
fills"), so the rate falls along the fold, less with more partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.stats import cpu_seconds, parse_metrics, percentile, rounded, total
from services.cli.stack import Stack
from shared.auth import bearer_headers
from shared.broker import free_port
from shared.contracts import Evidence, PartnershipEvent, Stage
from shared.kafka import make_producer
from shared.settings import KafkaSettings, TopicSettings, auth
from shared.waiting import wait_until_blocking

STAGES = (Stage.RUMORED, Stage.TALKS, Stage.AGREED, Stage.ACTIVE)


def company(i: int) -> str:
    return f"Viewbench {i:07d} Corp"


def view_events(alliances: int, seed: int = 1987) -> list[PartnershipEvent]:
    """One event per alliance, over alliances/5 companies (at least 3), distinct pairs."""
    rng = random.Random(seed)
    companies = max(3, alliances // 5)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < alliances:
        a, b = rng.sample(range(companies), 2)
        pairs.add((min(a, b), max(a, b)))
    start = datetime(2020, 1, 1, tzinfo=UTC)
    events = []
    for n, (a, b) in enumerate(sorted(pairs, key=lambda _: rng.random())):
        parties = [company(a), company(b)]
        article = f"view-{n}"
        sentence = f"{parties[0]} and {parties[1]} agreed to work together."
        events.append(PartnershipEvent(
            event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
            parties=parties, stage=rng.choice(STAGES), confidence=0.9,
            evidence=[Evidence(sentence=sentence, start=0, end=len(sentence))],
            published_at=start + timedelta(minutes=n), source="view-bench"))
    return events


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def produce(bootstrap: str, topic: str, events: list[PartnershipEvent]) -> float:
    """Send every event (acks awaited in chunks); seconds it took."""
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap, profile="embedded"),
                             client_id="radar-view-bench")
    await producer.start()
    started = time.monotonic()
    try:
        for i in range(0, len(events), 2000):
            futures = [await producer.send(topic, e.to_bytes(), key=e.key())
                       for e in events[i:i + 2000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def app_topic_partitions(bootstrap: str) -> dict[str, int]:
    """Partitions of each topic on the broker but the dead-letter topics and Faust's own
    assignor topic (the input, the outputs, the company index and the tables' changelogs
    once the aggregator is up)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        names = await consumer.topics()
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in sorted(names)
                if not t.endswith((".dlq", "__assignor-__leader")) and not t.startswith("__")}
    finally:
        await consumer.stop()


def consumed(base_url: str, topic: str) -> float:
    text = httpx.get(base_url + "/metrics", timeout=30).text
    return total(parse_metrics(text), "radar_messages_consumed_total", topic=topic)


def timed_gets(http: httpx.Client, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        started = time.perf_counter()
        response = http.get(url)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return out


def disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


#: (seconds, events folded so far, aggregator RSS MB) and (seconds, broker CPU s, broker RSS MB)
FoldSample = tuple[float, int, float]
BrokerSample = tuple[float, float, float]


def tenth_rates(samples: list[FoldSample]) -> list[float | None]:
    """Events/s between consecutive (seconds, events folded so far, ...) samples, the first
    from the start (0 s, 0 events)."""
    rates: list[float | None] = []
    last_s, last_events = 0.0, 0
    for seconds, events, *_ in samples:
        elapsed = seconds - last_s
        rates.append(rounded((events - last_events) / elapsed, 0) if elapsed > 0 else None)
        last_s, last_events = seconds, events
    return rates


def fold_watching_memory(base_url: str, topic: str, target: float, pid: int, timeout: float,
                         samples: int = 10, broker_pid: int | None = None,
                         began: float | None = None, start_count: float | None = None,
                         broker_cpu_at_start: float | None = None
                         ) -> tuple[list[FoldSample], list[BrokerSample]]:
    """Wait until the aggregator has consumed `target` events, sampling its RSS each time
    another `1/samples` of them is folded: [(seconds, events folded so far, RSS MB)]; and,
    given its pid, the broker's at the same moments: [(seconds, CPU seconds used since the
    start, RSS MB)]. Seconds count from `began` (a monotonic time: when the first event was
    sent; default now); `broker_cpu_at_start`: the broker's CPU seconds then."""
    start = consumed(base_url, topic) if start_count is None else start_count
    began = time.monotonic() if began is None else began
    step = max(1.0, (target - start) / samples)
    broker_cpu = (broker_cpu_at_start if broker_cpu_at_start is not None
                  else cpu_seconds(broker_pid) if broker_pid else 0.0)
    out: list[FoldSample] = []
    broker: list[BrokerSample] = []

    def progressed() -> bool:
        done = consumed(base_url, topic)
        if done >= start + step * (len(out) + 1) or done >= target:
            seconds = rounded(time.monotonic() - began)
            out.append((seconds, int(done - start), rounded(rss_mb(pid))))
            if broker_pid:
                broker.append((seconds, rounded(cpu_seconds(broker_pid) - broker_cpu),
                               rounded(rss_mb(broker_pid))))
        return done >= target

    wait_until_blocking(progressed, timeout=timeout, interval=0.5,
                        message=lambda last: f"the aggregator did not fold {target} events "
                        f"in {timeout}s")
    return out, broker


def timed_restore(stack: Stack, http: httpx.Client, check: list[str], *,
                  lose_disk: bool = False) -> tuple[float, float]:
    """SIGKILL the aggregator (and with `lose_disk` delete its data directory), start it:
    seconds until healthy, and until every URL of `check` answers 200."""
    agg = stack.services["aggregator"]
    agg.kill()
    if lose_disk:
        shutil.rmtree(stack.run_dir / "aggregator", ignore_errors=True)
    started = time.monotonic()
    agg.start()
    stack.wait_healthy(timeout=3600, names=("aggregator",))
    healthy_s = time.monotonic() - started
    wait_until_blocking(lambda: all(http.get(u).status_code == 200 for u in check),
                        timeout=3600, interval=0.5,
                        message="the sampled alliances after the restart")
    return healthy_s, time.monotonic() - started


def measure(alliances: int, queries: int, seed: int, run_dir: Path,
            store: str = "rocksdb://", partitions: int = 16) -> dict[str, Any]:
    topics = TopicSettings()
    events = view_events(alliances, seed)
    stack = Stack(run_dir=run_dir, broker_port=free_port(),
                  ports={"ingestor": free_port(), "extractor": free_port(),
                         "aggregator": free_port()},
                  extra_env={"RADAR_PROFILE": "embedded", "RADAR_LOG_LEVEL": "WARNING",
                             "RADAR_AGGREGATOR_STORE": store,
                             "RADAR_TOPIC_PARTITIONS": str(partitions)})
    figures: dict[str, Any] = {"alliances": alliances, "store": store,
                               "partitions": partitions,
                               "companies": len({p for e in events for p in e.parties})}
    try:
        stack.start(("aggregator",))
        stack.wait_healthy(timeout=120)
        agg = stack.services["aggregator"]
        assert agg.process is not None
        before_mb = rss_mb(agg.process.pid)
        assert stack.broker is not None and stack.broker.process is not None
        broker_pid = stack.broker.process.pid
        figures["topic_partitions"] = asyncio.run(app_topic_partitions(stack.bootstrap))
        wrong = {t: n for t, n in figures["topic_partitions"].items() if n != partitions}
        if wrong:
            raise RuntimeError(f"topics without {partitions} partitions: {wrong}")
        base = consumed(agg.base_url, topics.partnerships)
        broker_cpu = cpu_seconds(broker_pid)
        started = time.monotonic()
        send_s = asyncio.run(produce(stack.bootstrap, topics.partnerships, events))
        samples, broker_samples = fold_watching_memory(
            agg.base_url, topics.partnerships, base + len(events), agg.process.pid,
            timeout=max(600.0, alliances / 5), broker_pid=broker_pid, began=started,
            start_count=base, broker_cpu_at_start=broker_cpu)
        alliances_s = time.monotonic() - started
        # The company index is folded by its own agent from a repartition topic: the view
        # is complete when the sampled companies answer too (a company that never does is
        # reported, not waited for forever).
        rng = random.Random(seed + 1)
        sample = rng.sample(events, min(queries, len(events)))
        pending = {e.parties[0] for e in sample}

        def index_caught_up() -> bool:
            pending.difference_update({n for n in pending if httpx.get(
                f"{agg.base_url}/companies/{n}", timeout=30).status_code == 200})
            return not pending

        try:
            wait_until_blocking(index_caught_up, timeout=max(120.0, alliances / 50),
                                interval=1.0,
                                message="the company index catching up")
        except TimeoutError:
            figures["companies_missing_from_index"] = sorted(pending)[:20]
            figures["companies_missing_count"] = len(pending)
        index_s = time.monotonic() - started
        after_mb = rss_mb(agg.process.pid)
        figures |= {"produce_events_per_s": rounded(len(events) / send_s),
                    "fold_events_per_s": rounded(len(events) / alliances_s),
                    "index_complete_s": rounded(index_s),
                    "rss_mb_before": rounded(before_mb), "rss_mb_after": rounded(after_mb),
                    "bytes_per_alliance": rounded((after_mb - before_mb) * 2**20 / alliances,
                                                  0),
                    "fold_tenths_events_per_s": tenth_rates(samples),
                    "rss_samples": samples,
                    "broker_samples": broker_samples,
                    "broker_rss_mb_after_fold": rounded(rss_mb(broker_pid)),
                    "broker_cpu_s_fold": broker_samples[-1][1] if broker_samples else None,
                    "data_dir_mb": rounded(disk_mb(stack.run_dir / "aggregator"))}
        names = [e.parties[0] for e in sample if e.parties[0] not in pending]
        headers = bearer_headers(auth().api_token)
        with httpx.Client(base_url=agg.base_url, headers=headers, timeout=60) as http:
            timed_gets(http, [f"/alliances/{e.alliance_id}" for e in sample[:20]])  # warm
            lists = max(20, queries // 5)
            for name, urls in (
                    ("alliance", [f"/alliances/{e.alliance_id}" for e in sample]),
                    ("company", [f"/companies/{n}" for n in names]),
                    ("page", ["/alliances?limit=100"] * lists),
                    ("filtered_page", [f"/alliances?company={n}&limit=100"
                                       for n in names[:lists]]),
                    ("graph_depth2", [f"/graph?company={n}&depth=2"
                                      for n in names[:lists]])):
                ms = timed_gets(http, urls)
                figures |= {f"query_ms_p50_{name}": rounded(percentile(ms, 50), 2),
                            f"query_ms_p99_{name}": rounded(percentile(ms, 99), 2),
                            f"query_samples_{name}": len(ms)}
            # Restore after SIGKILL: the tables come back from disk and the changelogs.
            check = [f"/alliances/{e.alliance_id}" for e in sample[:50]]
            answers = [http.get(u).json() for u in check]
            healthy_s, back_s = timed_restore(stack, http, check)
            identical = [http.get(u).json() for u in check] == answers
            figures |= {"restore_healthy_s": rounded(healthy_s), "restore_s": rounded(back_s),
                        "rss_mb_after_restore": rounded(rss_mb(agg.process.pid))}
            if store == "rocksdb://":
                healthy_s, back_s = timed_restore(stack, http, check, lose_disk=True)
                figures |= {"restore_without_disk_healthy_s": rounded(healthy_s),
                            "restore_without_disk_s": rounded(back_s),
                            "rss_mb_after_restore_without_disk":
                                rounded(rss_mb(agg.process.pid))}
                identical = identical and [http.get(u).json() for u in check] == answers
            figures["restored_answers_identical"] = identical
    finally:
        stack.stop()
    return figures


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: not a positive count")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.view",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--alliances", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=500,
                        help="requests per single-item query kind (lists: a fifth)")
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--run-dir", help="logs (default: a temp dir)")
    parser.add_argument("--store", choices=("rocksdb://", "memory://"), default="rocksdb://",
                        help="the aggregator's table store")
    parser.add_argument("--partitions", type=positive_int, default=16,
                        help="partitions of every topic of the app (RADAR_TOPIC_PARTITIONS; "
                        "16: the fold 1.7x as fast as over 4 at 20,000 alliances, README "
                        "\"The view at scale\")")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="radar-view-bench-"))
    print(f"view bench: {args.alliances} alliances on {args.store}, {args.partitions} "
          f"partitions; logs in {run_dir}/logs",
          flush=True)
    figures = measure(args.alliances, args.queries, args.seed, run_dir, args.store,
                      args.partitions)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
