"""The ordered index behind paging (`services/aggregator/listing.py`) on its own, without
Kafka: build time, memory per alliance, and the time of a page of 100 over four partitions
for the whole list, one stage, one company and a time range.

    python -m bench.listing [--alliances 200000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import tracemalloc

from services.aggregator.listing import AllianceEntry, AllianceIndex, Selection

PARTITIONS = 4
STAGES = ("rumored", "talks", "agreed", "active", "failed", "ended")


def page_times(index: AllianceIndex, selection: Selection, pages: int = 200
               ) -> tuple[float, float]:
    """p50 and p99 (ms) of `pages` consecutive pages of 100, starting over at the end."""
    times, after = [], None
    for _ in range(pages):
        started = time.perf_counter()
        rows, more = index.page(range(PARTITIONS), selection, after, 100)
        times.append(time.perf_counter() - started)
        after = rows[-1].sort_key if more else None
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3


def run(alliances: int) -> None:
    rng = random.Random(1)
    companies = [f"c{i}" for i in range(alliances // 5)]
    tracemalloc.start()
    index = AllianceIndex()
    for p in range(PARTITIONS):
        index.replace(p, [])
    started = time.perf_counter()
    for i in range(alliances):
        parties = tuple(sorted(rng.sample(companies, 2)))
        index.put(i % PARTITIONS, AllianceEntry(f"a{i}", rng.randrange(10**15),
                                                rng.choice(STAGES), parties))
    build = time.perf_counter() - started
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"{alliances} alliances, {PARTITIONS} partitions: built in {build:.1f} s "
          f"({alliances / build:,.0f} writes/s), {memory / alliances:.0f} B per alliance")
    for name, selection in (("whole list", Selection()), ("stage", Selection(stage="talks")),
                            ("company", Selection(company=companies[7])),
                            ("since..until", Selection(since=10**14, until=5 * 10**14))):
        p50, p99 = page_times(index, selection)
        print(f"page of 100, {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description="The paging index on its own.")
    parser.add_argument("--alliances", type=int, default=200_000)
    run(parser.parse_args().alliances)


if __name__ == "__main__":
    main()
