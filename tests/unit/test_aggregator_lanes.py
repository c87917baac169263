"""Partition lanes (`services/aggregator/lanes.py`): in order within a partition, partitions
side by side, bounded, and a failure stops the agent."""

from __future__ import annotations

import asyncio

import pytest

from services.aggregator.lanes import PartitionLanes


async def test_in_order_per_partition_and_partitions_overlap():
    done: list[tuple[int, int]] = []
    running: set[int] = set()
    overlapped = asyncio.Event()

    async def handle(item: tuple[int, int]) -> None:
        partition, n = item
        assert partition not in running, "two items of one partition at once"
        running.add(partition)
        if len(running) > 1:
            overlapped.set()
        await asyncio.sleep(0.001 * (n % 3))  # simulated work of uneven length, not a wait
        running.discard(partition)
        done.append(item)

    lanes: PartitionLanes[tuple[int, int]] = PartitionLanes(handle, depth=4)
    for n in range(40):
        await lanes.put(n % 4, (n % 4, n))
    await lanes.join()
    await lanes.close()
    assert overlapped.is_set()
    for p in range(4):
        assert [n for q, n in done if q == p] == list(range(p, 40, 4))


async def test_a_full_lane_holds_the_producer_back():
    release = asyncio.Event()

    async def handle(item: int) -> None:
        await release.wait()

    lanes: PartitionLanes[int] = PartitionLanes(handle, depth=2)
    for n in range(3):  # one being handled, two waiting
        await lanes.put(0, n)
    blocked = asyncio.ensure_future(lanes.put(0, 3))
    finished, _ = await asyncio.wait({blocked}, timeout=0.05)  # a put that never lands
    assert not finished and not blocked.done()
    release.set()
    await asyncio.wait_for(blocked, 1)
    await lanes.join()
    await lanes.close()


async def test_a_failing_handler_fails_the_next_put():
    async def handle(item: int) -> None:
        if item == 2:
            raise RuntimeError("boom")

    lanes: PartitionLanes[int] = PartitionLanes(handle, depth=1)
    with pytest.raises(RuntimeError, match="boom"):
        for n in range(10):
            await lanes.put(0, n)
    await lanes.close()
