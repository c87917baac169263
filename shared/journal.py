"""A journal of the embedded broker on local disk: what makes `radar up` durable.

The embedded broker keeps everything in memory. While the stack runs, a journal follows
every topic (records in offset order, one append-only file per partition) and the committed
offsets of every consumer group; at the next start, before any service starts, it writes it
all back into the fresh broker: same topics, same partitions, every record at the same offset
with its key, value, timestamp and headers, and the groups' offsets. The services then find
the view's changelogs, the seen-set and their positions as they left them.

Why not the broker's own durable storage (s3:// on the s3rver file server): measured in
bench/durable.py and the README, every record is one object there (one record per batch is
the embedded workaround), so the pipeline's throughput collapses; the journal costs a
consumer reading what was written anyway, and start-up replays ~20k records/s.

Records the broker accepted in the last moments before a hard kill of the supervisor may be
missing from the journal; group offsets are clamped to what was journaled, so those records
are produced again by their senders' retries or re-derived (at least once, as everywhere).

File format per partition (`<dir>/<topic>/<partition>.log`), one entry per record, all
integers big-endian: offset (q), timestamp ms (q), key length (i, -1 for none), key,
value length (i, -1 for none), value, header count (H), then per header name length (H),
name, value length (i), value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

log = logging.getLogger(__name__)

_HEAD = struct.Struct(">qqi")
_LEN = struct.Struct(">i")
_COUNT = struct.Struct(">H")


@dataclass(frozen=True)
class Entry:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def encode(entry: Entry) -> bytes:
    parts = [_HEAD.pack(entry.offset, entry.timestamp,
                        -1 if entry.key is None else len(entry.key))]
    if entry.key is not None:
        parts.append(entry.key)
    parts.append(_LEN.pack(-1 if entry.value is None else len(entry.value)))
    if entry.value is not None:
        parts.append(entry.value)
    parts.append(_COUNT.pack(len(entry.headers)))
    for name, value in entry.headers:
        raw = name.encode()
        parts += [_COUNT.pack(len(raw)), raw, _LEN.pack(len(value)), value]
    return b"".join(parts)


def decode_all(data: bytes) -> Iterator[Entry]:
    """Entries of one partition file; a torn entry at the end (a crash mid-write) ends it."""
    pos, size = 0, len(data)
    try:
        while pos < size:
            offset, timestamp, key_len = _HEAD.unpack_from(data, pos)
            pos += _HEAD.size
            key = None if key_len < 0 else data[pos:pos + key_len]
            pos += max(key_len, 0)
            (value_len,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            value = None if value_len < 0 else data[pos:pos + value_len]
            pos += max(value_len, 0)
            (count,) = _COUNT.unpack_from(data, pos)
            pos += _COUNT.size
            headers = []
            for _ in range(count):
                (name_len,) = _COUNT.unpack_from(data, pos)
                pos += _COUNT.size
                name = data[pos:pos + name_len].decode()
                pos += name_len
                (hv_len,) = _LEN.unpack_from(data, pos)
                pos += _LEN.size
                headers.append((name, data[pos:pos + hv_len]))
                pos += hv_len
            if pos > size:
                return
            yield Entry(offset, timestamp, key, value, tuple(headers))
    except struct.error:
        return


class Journal:
    """The files: `topics.json` (partitions and configs), one log per partition,
    `groups.json` (group -> "topic:partition" -> committed offset)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, topic: str, partition: int) -> Path:
        return self.dir / "topics" / topic / f"{partition}.log"

    def topics(self) -> dict[str, dict[str, Any]]:
        return _read_json(self.dir / "topics.json", {})

    def groups(self) -> dict[str, dict[str, int]]:
        return _read_json(self.dir / "groups.json", {})

    def entries(self, topic: str, partition: int) -> list[Entry]:
        path = self.path(topic, partition)
        entries = list(decode_all(path.read_bytes())) if path.exists() else []
        # keep the gap-free prefix from offset 0 (what can be put back at the same offsets)
        out = []
        for i, entry in enumerate(entries):
            if entry.offset != i:
                break
            out.append(entry)
        return out

    def empty(self) -> bool:
        return not self.topics()

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.dir.rglob("*") if f.is_file()) \
            if self.dir.exists() else 0


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- restore


@dataclass
class Restored:
    topics: int
    records: int
    groups: int
    seconds: float


async def restore(journal: Journal, bootstrap: str, embedded: bool = True) -> Restored:
    """Put the journal back into an empty broker: topics, records at their offsets, group
    offsets (clamped to the records restored)."""
    started = time.monotonic()
    topics = journal.topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="radar-journal")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, meta["partitions"], 1, topic_configs=meta.get("config", {}))
               for t, meta in topics.items() if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="radar-journal",
                                acks="all", enable_idempotence=False,
                                **({"max_batch_size": 1, "linger_ms": 0} if embedded else {}))
    await producer.start()
    ends: dict[TopicPartition, int] = {}

    async def put_back(topic: str, partition: int) -> None:
        # In order within the partition (the producer keeps a partition's batches in
        # order), all partitions at once (one request carries a batch of each).
        entries = journal.entries(topic, partition)
        ends[TopicPartition(topic, partition)] = len(entries)
        sent = [await producer.send(topic, e.value, key=e.key, partition=partition,
                                    timestamp_ms=e.timestamp, headers=list(e.headers) or None)
                for e in entries]
        results = await asyncio.gather(*sent)
        if results and results[-1].offset != len(entries) - 1:
            raise RuntimeError(f"{topic}[{partition}] restored up to offset "
                               f"{results[-1].offset}, journaled {len(entries) - 1}: "
                               "was the broker empty?")

    try:
        await asyncio.gather(*(put_back(t, p) for t, meta in sorted(topics.items())
                               for p in range(meta["partitions"])))
    finally:
        await producer.stop()
    records = sum(ends.values())
    groups = journal.groups()
    for group, offsets in groups.items():
        commit = {}
        for key, offset in offsets.items():
            topic, _, partition = key.rpartition(":")
            tp = TopicPartition(topic, int(partition))
            if tp in ends and offset > 0:
                commit[tp] = OffsetAndMetadata(min(offset, ends[tp]), "")
        if commit:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                        enable_auto_commit=False, client_id="radar-journal")
            await consumer.start()
            try:
                consumer.assign(list(commit))
                await consumer.commit(commit)
            finally:
                await consumer.stop()
    return Restored(len(topics), records, len(groups), time.monotonic() - started)


# --------------------------------------------------------------------------- follow


class JournalWriter:
    """Follows the broker into the journal from a thread of its own (the supervisor's main
    thread is busy with the live view): new topics within a second, records as they come,
    group offsets every second. `stop()` catches up with the end of every partition first."""

    def __init__(self, journal: Journal, bootstrap: str, groups: list[str],
                 interval_s: float = 1.0) -> None:
        self.journal = journal
        self.bootstrap = bootstrap
        # The groups to keep offsets of, by name: the embedded broker's ListGroups answer
        # does not decode in aiokafka, so they are not discovered.
        self.groups = groups
        self._group_readers: dict[str, AIOKafkaConsumer] = {}
        self.interval_s = interval_s
        self.records = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="radar-journal", daemon=True)

    def start(self) -> JournalWriter:
        self.journal.dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._error is not None:
            log.error("journal writer failed: %r", self._error)

    def _run(self) -> None:
        try:
            asyncio.run(self._follow())
        except BaseException as exc:  # reported by stop(); the stack keeps running
            self._error = exc

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    client_id="radar-journal", fetch_max_wait_ms=200,
                                    auto_offset_reset="earliest")
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="radar-journal")
        await consumer.start()
        await admin.start()
        files: dict[TopicPartition, Any] = {}
        next_offset: dict[TopicPartition, int] = {}
        topics = self.journal.topics()
        try:
            last_scan = 0.0
            final = False
            while True:
                now = time.monotonic()
                if now - last_scan >= self.interval_s or final:
                    last_scan = now
                    await self._scan(consumer, admin, topics, files, next_offset)
                    await self._save_groups(topics)
                if not files:  # getmany without an assignment would wait forever
                    await asyncio.sleep(0.2)
                    batches = {}
                else:
                    batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    out = files[tp]
                    for r in records:
                        if r.offset < next_offset[tp]:
                            continue
                        out.write(encode(Entry(r.offset, r.timestamp, r.key, r.value,
                                               tuple(r.headers or ()))))
                        next_offset[tp] = r.offset + 1
                        self.records += 1
                    out.flush()
                if final and not batches and await self._caught_up(consumer, next_offset):
                    break
                if self._stop.is_set() and not final:
                    final = True  # one more scan, then read to the end
        finally:
            for f in files.values():
                f.close()
            for reader in self._group_readers.values():
                await reader.stop()
            await consumer.stop()
            await admin.close()

    async def _scan(self, consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient,
                    topics: dict, files: dict, next_offset: dict) -> None:
        names = set(await admin.list_topics())
        changed = False
        for name in sorted(names - set(topics)):
            described = await admin.describe_topics([name])
            partitions = len(described[0]["partitions"]) if described else 0
            if not partitions:
                continue
            configs = await _topic_config(admin, name)
            topics[name] = {"partitions": partitions, "config": configs}
            changed = True
        if changed:
            _write_json(self.journal.dir / "topics.json", topics)
        wanted = {TopicPartition(t, p) for t, m in topics.items()
                  for p in range(m["partitions"]) if t in names}
        if wanted - set(files):
            for tp in wanted - set(files):
                path = self.journal.path(tp.topic, tp.partition)
                path.parent.mkdir(parents=True, exist_ok=True)
                next_offset[tp] = len(self.journal.entries(tp.topic, tp.partition))
                files[tp] = path.open("ab")
            consumer.assign(sorted(files))
            for tp in files:
                consumer.seek(tp, next_offset[tp])

    async def _save_groups(self, topics: dict[str, dict[str, Any]]) -> None:
        """Committed offsets of the known groups (OffsetFetch through a group consumer that
        never joins: the embedded broker's answer to the admin call does not decode)."""
        tps = [TopicPartition(t, p) for t, meta in topics.items() if _consumable(t)
               for p in range(meta["partitions"])]
        groups: dict[str, dict[str, int]] = {}
        for name in self.groups:
            consumer = self._group_readers.get(name)
            if consumer is None:
                consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=name,
                                            enable_auto_commit=False,
                                            client_id="radar-journal")
                await consumer.start()
                self._group_readers[name] = consumer
            kept = {}
            for tp in tps:
                with contextlib.suppress(KafkaError):
                    offset = await consumer.committed(tp)
                    if offset is not None and offset >= 0:
                        kept[f"{tp.topic}:{tp.partition}"] = offset
            if kept:
                groups[name] = kept
        if groups:
            _write_json(self.journal.dir / "groups.json", self.journal.groups() | groups)

    async def _caught_up(self, consumer: AIOKafkaConsumer, next_offset: dict) -> bool:
        if not next_offset:
            return True
        ends = await consumer.end_offsets(list(next_offset))
        return all(next_offset[tp] >= end for tp, end in ends.items())


def _consumable(topic: str) -> bool:
    """Topics a consumer group may have offsets on (not changelogs, dead letters or
    Faust's assignor topic, which nothing commits on)."""
    return not (topic.endswith(("-changelog", ".dlq")) or "__assignor" in topic)


async def _topic_config(admin: AIOKafkaAdminClient, name: str) -> dict[str, str]:
    """cleanup.policy=compact if the topic has it (the only config the stack sets)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    with contextlib.suppress(Exception):
        result = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        for response in result:
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[0] == "cleanup.policy" and entry[1] == "compact":
                        return {"cleanup.policy": "compact"}
    return {}
