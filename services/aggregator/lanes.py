"""Partition lanes: one agent's events handled in order within each input partition, the
partitions side by side.

Why: an event's effects are two broker round trips in a row (its outputs, then its table
write; see `agents.py`), and one event at a time leaves the process waiting on the broker
most of the time. Everything that needs an order is per partition: a key lives in one
partition (so its table writes stay in order), the change fence is per partition, and Faust
commits each partition's offsets separately. So each partition gets a lane (a bounded queue
and one task), and the sends of different partitions' events share the broker's requests.

Plain asyncio, no Kafka: the agents hand each event to `put` and the lanes call `handle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PartitionLanes(Generic[T]):
    """`handle(item)` for each item `put`, in order per partition, partitions concurrently;
    at most `depth` items wait per partition (`put` waits when its lane is full). A failing
    `handle` stops the lanes: the next `put` (or `close`) raises its error, so the agent
    crashes as it would have running the handler itself."""

    def __init__(self, handle: Callable[[T], Awaitable[Any]], depth: int = 32) -> None:
        self._handle = handle
        self._depth = depth
        self._queues: dict[int, asyncio.Queue[T]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._failed: BaseException | None = None

    async def put(self, partition: int, item: T) -> None:
        self._raise_failure()
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = asyncio.Queue(self._depth)
            self._tasks[partition] = asyncio.create_task(self._drain(queue),
                                                         name=f"lane-{partition}")
        put = asyncio.ensure_future(queue.put(item))
        # A full lane whose task has failed would never take the item: wait for either.
        await asyncio.wait([put, self._tasks[partition]], return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
        self._raise_failure()

    async def _drain(self, queue: asyncio.Queue[T]) -> None:
        while True:
            item = await queue.get()
            try:
                await self._handle(item)
            except BaseException as exc:
                self._failed = exc
                raise
            finally:
                queue.task_done()

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def join(self) -> None:
        """Wait until every item put so far is handled."""
        for queue in list(self._queues.values()):
            await queue.join()
        self._raise_failure()

    async def close(self) -> None:
        """Stop every lane (items still waiting are dropped: their events are not acked,
        so they are delivered again)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()
