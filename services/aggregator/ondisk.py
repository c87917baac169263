"""The view on disk: Faust's RocksDB store (`rocksdict`) for the aggregator's tables, with the
ordered indexes of `listing.py` kept beside each partition's rows rather than in RAM.

Each table partition is one RocksDB database (Faust's layout: `<data dir>/.../tables/
<table>-<partition>.db`). Its default column family holds the table's rows, as Faust writes
them; the column family `radar-index` holds the partition's index as sorted keys:

    alliances   A <time> <id>               every alliance, by (last changed, id)
                S <stage> NUL <time> <id>   per stage
                C <company> NUL <time> <id> per company (slug)
                #A, #S <stage>              counts
    companies   T <term> NUL <slug>         each company's folded name and slug (type-ahead)
                K <~count> <slug>           by alliance count, most first
                #N                          count

<time> is the last change in µs since the epoch as 8 big-endian bytes (offset by 2^63), so
byte order is (last changed, id) order and a page is a backwards range read from the cursor.
Each value carries what filtering needs (the stage and the party slugs, or a company's name
and count), so a walk reads no table row until the page is cut.

Every write to a table, whether the agent's (after its changelog record is acknowledged) or
a changelog record applied during a restore or on a standby, goes through `IndexedStore.write`:
the row, its index entries (the old ones deleted, read from the row it replaces), the counts
and, for changelog batches, the persisted changelog offset, in one RocksDB WriteBatch. The
index is therefore exactly the rows on disk after any crash, and a restart replays only the
changelog records after the persisted offset (Faust seeks to it) instead of the whole
changelog: no rebuild, whatever the size of the view.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from rocksdict import Rdict, WriteBatch

from services.aggregator.listing import (
    ALL,
    COMPANY,
    STAGE,
    AllianceEntry,
    CompanyEntry,
    Selection,
    SortKey,
    bounds,
    company_rank,
    first_page,
    lists_for,
    merge_walks,
)
from shared.contracts import CompanyIndex

INDEX_CF = "radar-index"
_TIME_OFFSET = 1 << 63
_COUNT_MAX = (1 << 32) - 1


@dataclass
class IndexDelta:
    """What one row change does to the index: keys to delete, rows to put, counts to move."""

    deletes: list[bytes] = field(default_factory=list)
    puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    counts: Counter[bytes] = field(default_factory=Counter)


#: (old row, new row) -> the index change; None is no row.
Indexer = Callable[[bytes | None, bytes | None], IndexDelta]


def _delta(old: list[tuple[bytes, bytes]], new: list[tuple[bytes, bytes]],
           old_counts: Iterable[bytes], new_counts: Iterable[bytes]) -> IndexDelta:
    delta = IndexDelta(deletes=[k for k, _ in old], puts=new)
    delta.counts.subtract(old_counts)
    delta.counts.update(new_counts)
    return delta


# ------------------------------------------------------------------ alliances


def time_bytes(micros: int) -> bytes:
    return (micros + _TIME_OFFSET).to_bytes(8, "big")


def bound_bytes(bound: tuple) -> bytes:
    """A walk bound of `listing.bounds` ((t,) or (t, id)) as index key bytes, in the same
    order: (t,) is a prefix of every (t, id), so it sorts first, as the tuple does."""
    return time_bytes(bound[0]) + (bound[1].encode() if len(bound) > 1 else b"")


def list_prefix(group: str, name: str) -> bytes:
    if group == ALL:
        return b"A"
    return (b"S" if group == STAGE else b"C") + name.encode() + b"\0"


def alliance_rows(entry: AllianceEntry) -> list[tuple[bytes, bytes]]:
    """The index rows of one alliance: one per list it is on."""
    tail = time_bytes(entry.last_changed) + entry.alliance_id.encode()
    value = b"\0".join([entry.stage.encode(), *(c.encode() for c in entry.companies)])
    lists = [(ALL, ""), (STAGE, entry.stage), *((COMPANY, c) for c in entry.companies)]
    return [(list_prefix(group, name) + tail, value) for group, name in lists]


def alliance_counts(entry: AllianceEntry) -> list[bytes]:
    return [b"#A", b"#S" + entry.stage.encode()]


def entry_of_row(prefix: bytes, key: bytes, value: bytes) -> AllianceEntry:
    at = len(prefix)
    stage, *companies = value.decode().split("\0")
    return AllianceEntry(key[at + 8:].decode(),
                         int.from_bytes(key[at:at + 8], "big") - _TIME_OFFSET, stage,
                         tuple(companies))


def alliance_delta(old: bytes | None, new: bytes | None) -> IndexDelta:
    """Indexer of the `alliances` table (rows are AllianceState JSON)."""
    before = AllianceEntry.from_json(old) if old else None
    after = AllianceEntry.from_json(new) if new else None
    if before == after:
        return IndexDelta()
    return _delta(alliance_rows(before) if before else [],
                  alliance_rows(after) if after else [],
                  alliance_counts(before) if before else [],
                  alliance_counts(after) if after else [])


# ------------------------------------------------------------------ companies


def company_rows(entry: CompanyEntry) -> list[tuple[bytes, bytes]]:
    count = min(entry.alliance_count, _COUNT_MAX)
    named = count.to_bytes(4, "big") + entry.name.encode()
    slug = entry.key.encode()
    rows = [(b"T" + term.encode() + b"\0" + slug, named) for term in sorted(entry.terms())]
    rows.append((b"K" + (_COUNT_MAX - count).to_bytes(4, "big") + slug, named))
    return rows


def company_of_row(slug: bytes, value: bytes) -> CompanyEntry:
    return CompanyEntry(slug.decode(), value[4:].decode(), int.from_bytes(value[:4], "big"))


def company_delta(old: bytes | None, new: bytes | None) -> IndexDelta:
    """Indexer of the `companies` table (rows are CompanyIndex JSON)."""
    before = CompanyEntry.of(CompanyIndex.model_validate_json(old)) if old else None
    after = CompanyEntry.of(CompanyIndex.model_validate_json(new)) if new else None
    if before == after:
        return IndexDelta()
    return _delta(company_rows(before) if before else [],
                  company_rows(after) if after else [],
                  [b"#N"] if before else [], [b"#N"] if after else [])


# ------------------------------------------------------------------ the store


class SharedMemory:
    """One worker's RocksDB memory, whatever its partition count: one block cache shared by
    every partition database of both tables, and one bound on all their memtables (RocksDB's
    write buffer manager flushes the largest when the total passes it).

    Why: Faust gives each partition database its own cache and memtables, so memory grew
    with the partitions (2 tables x partitions x (cache + 2 memtables per column family));
    the embedded broker's fold wants more partitions (README "The view at scale")."""

    def __init__(self, cache_bytes: int, memtable_bytes: int) -> None:
        self.cache = rocksdict.Cache(cache_bytes)
        self.memtables = rocksdict.WriteBufferManager(memtable_bytes, False)


class SharedMemoryOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict), with the block cache and the memtable bound of
    `shared` in place of a cache per database."""

    def __init__(self, shared: SharedMemory, **options: Any) -> None:
        super().__init__(**options, use_rocksdict=True)
        self.shared = shared

    def as_options(self) -> rocksdict.Options:
        options = super().as_options()
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(self.shared.cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.shared.memtables)
        return options


class IndexedStore(RocksStore):
    """Faust's RocksDB store whose writes also keep the partition's index (module
    docstring). Rows live in the partition their key hashes to (`partition_of`, the same
    hash as every topic of the app), so reads and writes go straight to that database."""

    def __init__(self, *args: Any, indexer: Indexer, partition_of: Callable[[bytes], int],
                 shared: SharedMemory | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if shared is not None:
            self.rocksdb_options = SharedMemoryOptions(shared, **self.options)
        self._indexer = indexer
        self._partition_of = partition_of
        self._index_cfs: dict[int, tuple[Rdict, Any, Rdict]] = {}

    def _open_for_partition(self, partition: int) -> Rdict:
        db = super()._open_for_partition(partition)
        if INDEX_CF not in Rdict.list_cf(str(self.partition_path(partition))):
            db.create_column_family(INDEX_CF, self.rocksdb_options.as_options())
        return db

    def _index(self, partition: int, db: Rdict) -> tuple[Any, Rdict]:
        """The index column family of an open partition database (handle for writes,
        dict for reads), cached until the database is closed."""
        cached = self._index_cfs.get(partition)
        if cached is None or cached[0] is not db:
            cached = (db, db.get_column_family_handle(INDEX_CF),
                      db.get_column_family(INDEX_CF))
            self._index_cfs[partition] = cached
        return cached[1], cached[2]

    def index_of(self, partition: int) -> Rdict | None:
        """The index of `partition` if its database is open here (an owned or standby
        partition), else None."""
        db = self._dbs.get(partition)
        return None if db is None else self._index(partition, db)[1]

    def write(self, partition: int, records: Iterable[tuple[bytes, bytes | None]],
              offset: int | None = None) -> None:
        """Rows of one partition (None deletes), their index changes and the changelog
        offset they come from (a restore's records; the agent's writes leave it to Faust's
        send callback), in one atomic WriteBatch."""
        db = self._db_for_partition(partition)
        handle, index = self._index(partition, db)
        batch = WriteBatch(raw_mode=True)
        latest: dict[bytes, bytes | None] = {}
        counts: Counter[bytes] = Counter()
        for key, value in records:
            old = latest[key] if key in latest else db.get(key)
            latest[key] = value
            if old == value:
                continue
            delta = self._indexer(old, value)
            for gone in delta.deletes:
                batch.delete(gone, handle)
            for row, indexed in delta.puts:
                batch.put(row, indexed, handle)
            counts.update(delta.counts)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        for name, moved in counts.items():
            if moved:
                batch.put(name, _count_bytes(_count(index, name) + moved), handle)
        if offset is not None:
            batch.put(self.offset_key, str(offset).encode())
        db.write(batch)

    def apply_changelog_batch(self, batch: Iterable[faust.EventT], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """A restore's or a standby's changelog records, indexed as the agent's writes are."""
        per_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        offsets: dict[int, int] = {}  # one changelog topic: a partition is a database
        for event in batch:
            msg = event.message
            per_partition.setdefault(msg.partition, []).append((msg.key, msg.value))
            offsets[msg.partition] = max(msg.offset, offsets.get(msg.partition, -1))
        for partition, records in per_partition.items():
            self.write(partition, records, offsets[partition])

    def _set(self, key: bytes, value: bytes | None) -> None:
        self.write(self._partition_of(key), [(key, value)])

    def _del(self, key: bytes) -> None:
        self.write(self._partition_of(key), [(key, None)])

    def _get(self, key: bytes) -> bytes | None:
        db = self._dbs.get(self._partition_of(key))
        return None if db is None else db.get(key)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self._index_cfs.pop(tp.partition, None)  # or the database stays locked
        super().revoke_partitions(table, tps)

    async def stop(self) -> None:
        self._index_cfs.clear()
        await super().stop()


def _count(index: Rdict, name: bytes) -> int:
    raw = index.get(name)
    return int.from_bytes(raw, "big", signed=True) if raw else 0


def _count_bytes(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


class IndexedTable(faust.Table):
    """A table on `IndexedStore` (declared like `app.Table`, then added to `app.tables`)."""

    def __init__(self, *args: Any, indexer: Indexer, partition_of: Callable[[bytes], int],
                 shared: SharedMemory | None = None, **kwargs: Any) -> None:
        self._indexer = indexer
        self._partition_of = partition_of
        self._shared = shared
        super().__init__(*args, **kwargs)

    def _new_store_by_url(self, url: Any) -> IndexedStore:
        return IndexedStore(url, self.app, self, table_name=self.name, key_type=self.key_type,
                            key_serializer=self.key_serializer,
                            value_serializer=self.value_serializer,
                            value_type=self.value_type, loop=self.loop,
                            options=self.options, indexer=self._indexer,
                            partition_of=self._partition_of, shared=self._shared)


def define_table(app: faust.App, name: str, partitions: int, indexer: Indexer,
                 partition_of: Callable[[bytes], int], options: dict[str, Any],
                 shared: SharedMemory | None = None) -> faust.Table:
    """A bytes-to-bytes table of `app` on disk, indexed by `indexer`; with `shared`, its
    partition databases use that cache and memtable bound (else one cache each)."""
    return app.tables.add(IndexedTable(
        app, name=name, beacon=app.tables.beacon, key_type=bytes, value_type=bytes,
        partitions=partitions, store="rocksdb://", options=options, indexer=indexer,
        partition_of=partition_of, shared=shared))


# ------------------------------------------------------------------ readers


def _descending(index: Rdict, prefix: bytes, bottom: bytes | None, top: bytes | None
                ) -> Iterator[tuple[bytes, bytes]]:
    """Index rows under `prefix` from `top` (exclusive) down to `bottom` (inclusive)."""
    upper = prefix + top if top is not None else prefix[:-1] + bytes([prefix[-1] + 1])
    lower = prefix + bottom if bottom is not None else prefix
    cursor = index.iter()
    cursor.seek_for_prev(upper)
    if cursor.valid() and cursor.key() == upper:
        cursor.prev()
    while cursor.valid():
        key = cursor.key()
        if key < lower:
            return
        yield key, cursor.value()
        cursor.prev()


def _entries(index: Rdict, prefix: bytes, bottom: bytes | None, top: bytes | None
             ) -> Iterator[AllianceEntry]:
    for key, value in _descending(index, prefix, bottom, top):
        yield entry_of_row(prefix, key, value)


@dataclass(frozen=True)
class DiskAllianceIndex:
    """`listing.AllianceIndex`'s queries, over the index column families of `store`."""

    store: IndexedStore

    def _walk(self, index: Rdict, selection: Selection, after: SortKey | None
              ) -> Iterator[AllianceEntry]:
        low, high = bounds(selection, after)
        bottom = bound_bytes(low) if low is not None else None
        top = bound_bytes(high) if high is not None else None
        walks = [_entries(index, list_prefix(group, name), bottom, top)
                 for group, name in lists_for(selection)]
        return merge_walks(walks, selection)

    def _indexes(self, partitions: Iterable[int]) -> list[Rdict]:
        return [ix for p in sorted(set(partitions))
                if (ix := self.store.index_of(p)) is not None]

    def page(self, partitions: Iterable[int], selection: Selection, after: SortKey | None,
             limit: int) -> tuple[list[AllianceEntry], bool]:
        return first_page((self._walk(ix, selection, after)
                           for ix in self._indexes(partitions)), limit)

    def count(self, partition: int) -> int:
        index = self.store.index_of(partition)
        return _count(index, b"#A") if index is not None else 0

    def stage_counts(self, partitions: Iterable[int]) -> dict[str, int]:
        out: Counter[str] = Counter()
        for index in self._indexes(partitions):
            for key, raw in index.items(from_key=b"#S"):
                if not key.startswith(b"#S"):
                    break
                out[key[2:].decode()] += int.from_bytes(raw, "big", signed=True)
        return {stage: n for stage, n in out.items() if n}


@dataclass(frozen=True)
class DiskCompanyNames:
    """`listing.CompanyNames`'s queries, over the index column families of `store`."""

    store: IndexedStore

    def _indexes(self, partitions: Iterable[int]) -> list[Rdict]:
        return [ix for p in sorted(set(partitions))
                if (ix := self.store.index_of(p)) is not None]

    def search(self, partitions: Iterable[int], prefix: str, limit: int
               ) -> list[CompanyEntry]:
        start = b"T" + prefix.encode()

        def matching(index: Rdict) -> Iterator[CompanyEntry]:
            seen = set()
            for key, value in index.items(from_key=start):
                if not key.startswith(start):
                    return
                slug = key.rsplit(b"\0", 1)[1]
                if slug not in seen:
                    seen.add(slug)
                    yield company_of_row(slug, value)

        found = (e for index in self._indexes(partitions) for e in matching(index))
        return heapq.nsmallest(limit, found, key=lambda e: company_rank(e, prefix))

    def count(self, partitions: Iterable[int]) -> int:
        return sum(_count(index, b"#N") for index in self._indexes(partitions))

    def top(self, partitions: Iterable[int], limit: int) -> list[CompanyEntry]:
        def best(index: Rdict) -> Iterator[CompanyEntry]:
            for n, (key, value) in enumerate(index.items(from_key=b"K")):
                if n >= limit or not key.startswith(b"K"):
                    return
                yield company_of_row(key[5:], value)

        found = (e for index in self._indexes(partitions) for e in best(index))
        return heapq.nsmallest(limit, found, key=lambda e: (-e.alliance_count, e.key))
