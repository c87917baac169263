"""The change fence: a change already on the change topic is not sent again after a crash
between its acknowledgement and the table write (see `ChangeFence`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from aiokafka.structs import TopicPartition

from shared.kafka import make_consumer
from shared.settings import KafkaSettings

#: Header of every AllianceChange: "<input partition>@<offset>" of the record that caused it.
SOURCE_HEADER = "radar-source"


def source_header(partition: int, offset: int) -> dict[str, bytes]:
    """The header that marks a change with the input record that caused it."""
    return {SOURCE_HEADER: f"{partition}@{offset}".encode()}


class ChangeFence:
    """Per input partition, the highest input offset whose change is on the change topic.

    The change of a record is acknowledged before its table write; a crash in between
    redelivers the record to a table without it, and the same change would go out again.
    Changes of input partition p go to partition p of the change topic, in input order,
    each marked with its source offset (header `radar-source`, "p@offset"), so after a
    (re)assignment the tail of that partition says how far changes were sent: a redelivered
    record at or below it sends its change no more. Read once per partition and rebalance.
    """

    def __init__(self, app: faust.App, kafka: KafkaSettings, changes_topic: str) -> None:
        self._app = app
        self._kafka = kafka
        self._changes_topic = changes_topic
        self._upto: dict[int, int] = {}
        self._generation: int | None = None
        self._reader: Any = None
        #: The partition lanes ask side by side; the one reader reads one tail at a time.
        self._reading = asyncio.Lock()

    def record(self, partition: int, offset: int) -> None:
        self._upto[partition] = max(offset, self._upto.get(partition, -1))

    async def upto(self, partition: int) -> int:
        if self._generation != self._app.consumer_generation_id:
            self._upto.clear()
            self._generation = self._app.consumer_generation_id
        if partition not in self._upto:
            async with self._reading:
                tail = await self._read_tail(partition)
            self._upto.setdefault(partition, tail)
        return self._upto[partition]

    async def _read_tail(self, partition: int, last: int = 100) -> int:
        if self._reader is None:
            self._reader = make_consumer(self._kafka, group_id=None,
                                         client_id="radar-aggregator-fence", background=True)
            await self._reader.start()
        tp = TopicPartition(self._changes_topic, partition)
        self._reader.assign([tp])
        end = (await self._reader.end_offsets([tp]))[tp]
        self._reader.seek(tp, max(0, end - last))
        found = -1
        deadline = time.monotonic() + 30
        while await self._reader.position(tp) < end and time.monotonic() < deadline:
            for record in (await self._reader.getmany(tp, timeout_ms=500)).get(tp, []):
                found = max(found, _source_offset(record.headers, partition))
        return found


def _source_offset(headers: Any, partition: int) -> int:
    for name, value in headers or ():
        if name == SOURCE_HEADER:
            where, _, offset = value.decode(errors="replace").partition("@")
            if where == str(partition) and offset.isdigit():
                return int(offset)
    return -1
