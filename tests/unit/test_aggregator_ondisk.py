"""The on-disk view (`services/aggregator/ondisk.py`): Faust's RocksDB store with the ordered
indexes kept in the same write as each row, answering exactly as the in-memory indexes do.
Real RocksDB databases in a temporary directory; no Kafka (rows are written the way the
agent's table write and a changelog restore write them)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace

import faust
import pytest

from services.aggregator.listing import (
    AllianceEntry,
    AllianceIndex,
    CompanyEntry,
    CompanyNames,
    Selection,
    fold,
)
from services.aggregator.ondisk import bound_bytes, time_bytes
from services.aggregator.routing import partition_for
from services.aggregator.tables import Tables
from shared.contracts import CompanyIndex, CompanyLink
from shared.settings import AggregatorSettings
from tests.unit.test_aggregator_listing import PARTITIONS, VIEW, make_state


@pytest.fixture
def tables(tmp_path) -> Tables:
    app = faust.App("ondisk-test", datadir=str(tmp_path), autodiscover=False)
    return Tables.define(app, PARTITIONS, AggregatorSettings(store="rocksdb://"))


def key_of(alliance_id: str) -> tuple[bytes, int]:
    key = alliance_id.encode()
    return key, partition_for(key, PARTITIONS)


def memory_index(states) -> AllianceIndex:
    index = AllianceIndex()
    for p in range(PARTITIONS):
        index.replace(p, [])
    for state in states:
        index.put(key_of(state.alliance_id)[1], AllianceEntry.of(state))
    return index


def write_all(tables: Tables, states) -> None:
    for state in states:
        key, partition = key_of(state.alliance_id)
        tables.alliances.data.write(partition, [(key, state.to_bytes())])


def selections() -> list[Selection]:
    times = sorted(AllianceEntry.of(s).last_changed for s in VIEW)
    mid, late = times[len(times) // 3], times[2 * len(times) // 3]
    return [Selection(), Selection(stage="talks"), Selection(company="firm-c"),
            Selection(company="firm-a", stage="agreed"),
            Selection(companies=frozenset({"firm-a", "firm-b"})),
            Selection(companies=frozenset({"firm-c", "firm-j", "firm-b"})),
            Selection(since=mid, until=late), Selection(stage="failed", until=late)]


def test_time_and_bounds_sort_as_the_tuples_do():
    moments = [-10**15, -1, 0, 1, 10**15, 1_700_000_000_000_000]
    assert sorted(moments, key=time_bytes) == moments
    keys = [(5,), (5, "a"), (5, "a+b"), (5, "b"), (6,), (6, "a")]
    assert sorted(keys, key=bound_bytes) == sorted(keys)


@pytest.mark.parametrize("selection", selections(), ids=repr)
def test_disk_index_pages_exactly_as_the_memory_index(tables, selection):
    write_all(tables, VIEW)
    memory = memory_index(VIEW)
    for partitions in ([0, 1, 2, 3], [1, 3]):
        after, pages = None, 0
        while True:
            got = tables.alliance_index.page(partitions, selection, after, 7)
            assert got == memory.page(partitions, selection, after, 7)
            pages += 1
            if not got[1]:
                break
            after = got[0][-1].sort_key
        assert pages < 100


def test_rewrites_move_entries_and_counts_follow(tables):
    write_all(tables, VIEW)
    rng = random.Random(3)
    moved = []
    for state in rng.sample(VIEW, 30):
        stage = rng.choice(["talks", "agreed", "ended"])
        moved.append(make_state(list(state.parties), stage, 20 + rng.randrange(5)))
    write_all(tables, moved)
    latest = {s.alliance_id: s for s in [*VIEW, *moved]}
    memory = memory_index(latest.values())
    for selection in selections():
        assert tables.alliance_index.page(range(4), selection, None, 1000) == \
            memory.page(range(4), selection, None, 1000)
    assert [tables.alliance_index.count(p) for p in range(4)] == \
        [memory.count(p) for p in range(4)]
    assert tables.alliance_index.stage_counts(range(4)) == memory.stage_counts(range(4))
    assert tables.alliance_count({0, 1, 2, 3}) == len(latest)
    # a delete takes the row and its index entries
    key, partition = key_of(VIEW[0].alliance_id)
    tables.alliances.data.write(partition, [(key, None)])
    assert tables.alliances.data._get(key) is None
    assert tables.alliance_count({0, 1, 2, 3}) == len(latest) - 1
    everything, _ = tables.alliance_index.page(range(4), Selection(), None, 1000)
    assert VIEW[0].alliance_id not in {e.alliance_id for e in everything}


@dataclass
class _Message:
    key: bytes
    value: bytes | None
    partition: int
    offset: int


def test_changelog_batches_index_rows_and_persist_their_offset(tables):
    """A restore applies changelog batches (several writes of one key among them, and
    records replayed again from the persisted offset): the index ends as the rows do."""
    store = tables.alliances.data
    history = [*VIEW, *(make_state(list(s.parties), "ended", 30) for s in VIEW[:40])]
    records = []
    for n, state in enumerate(history):
        key, partition = key_of(state.alliance_id)
        records.append(_Message(key, state.to_bytes(), partition, n))
    events = [SimpleNamespace(message=m) for m in records]
    for start in range(0, len(events), 25):
        store.apply_changelog_batch(events[start:start + 25], None, None)
    store.apply_changelog_batch(events[-30:], None, None)  # replayed from an older offset
    latest = {s.alliance_id: s for s in history}
    memory = memory_index(latest.values())
    assert tables.alliance_index.page(range(4), Selection(), None, 1000) == \
        memory.page(range(4), Selection(), None, 1000)
    assert tables.alliance_count({0, 1, 2, 3}) == len(latest)
    for p in range(PARTITIONS):
        last = max(m.offset for m in records if m.partition == p)
        assert int(store._db_for_partition(p).get(store.offset_key)) == last


def test_rows_index_and_counts_survive_reopening(tmp_path):
    app = faust.App("ondisk-test", datadir=str(tmp_path), autodiscover=False)
    first = Tables.define(app, PARTITIONS, AggregatorSettings(store="rocksdb://"))
    write_all(first, VIEW)
    expected = first.alliance_index.page(range(4), Selection(), None, 1000)
    first.alliances.data._dbs.clear()
    first.alliances.data._index_cfs.clear()
    import gc
    gc.collect()  # the databases close: their locks go
    again = Tables.define(faust.App("ondisk-test", datadir=str(tmp_path), autodiscover=False),
                          PARTITIONS, AggregatorSettings(store="rocksdb://"))
    for p in range(PARTITIONS):
        again.alliances.data._db_for_partition(p)  # as Faust opens assigned partitions
    assert again.alliance_index.page(range(4), Selection(), None, 1000) == expected
    assert again.alliance_count({0, 1, 2, 3}) == len(VIEW)


def company_row(name: str, alliances: int) -> bytes:
    key = fold(name).replace(" ", "-")
    links = [CompanyLink(company=name, alliance_id=f"{key}+p{i:03d}",
                         parties=[name, f"P{i:03d}"], stage="talks", episode=1,
                         last_changed=VIEW[0].last_changed, source_offset=i)
             for i in range(alliances)]
    return CompanyIndex(key=key, company=name, alliances=links).to_bytes()


def test_disk_type_ahead_and_top_companies_rank_as_the_memory_index(tables):
    store = tables.companies.data
    memory = CompanyNames()
    for p in range(PARTITIONS):
        memory.replace(p, [])
    for name, count in [("Nissan", 3), ("Nissan Chemical", 9), ("Nisshin", 1),
                        ("General Motors", 4), ("Nissan Chemical", 5), ("Nismo", 5)]:
        raw = company_row(name, count)
        key = CompanyIndex.model_validate_json(raw).key.encode()
        partition = partition_for(key, PARTITIONS)
        store.write(partition, [(key, raw)])
        memory.put(partition, CompanyEntry.of(CompanyIndex.model_validate_json(raw)))
    for prefix in ("nis", "nissan", "general-m", "general m", "x"):
        for limit in (1, 10):
            assert tables.company_names.search(range(4), fold(prefix), limit) == \
                memory.search(range(4), fold(prefix), limit)
    assert [e.key for e in tables.company_names.search(range(4), "nis", 10)] == \
        ["nismo", "nissan-chemical", "nissan", "nisshin"]  # 5, 5 (by name), 3, 1
    assert tables.company_names.top(range(4), 2) == memory.top(range(4), 2)
    assert tables.company_names.count(range(4)) == memory.count(range(4)) == 5


def test_graph_hop_over_companies_of_different_name_lengths(tables):
    names = ["Ab", "Beta Industries Holding", "Cee Corp", "Delta Long Name Motors", "E"]
    states = [make_state([a, b], "talks", day) for day, (a, b) in
              enumerate((a, b) for i, a in enumerate(names) for b in names[i + 1:])]
    write_all(tables, states)
    memory = memory_index(states)
    for hop in ({"ab", "cee-corp", "delta-long-name-motors"}, {"e", "beta-industries-holding"}):
        selection = Selection(companies=frozenset(hop))
        got = tables.alliance_index.page(range(4), selection, None, 100)
        assert got == memory.page(range(4), selection, None, 100)
        assert {e.alliance_id for e in got[0]} == \
            {s.alliance_id for s in states if hop & set(s.alliance_id.split("+"))}



def test_every_partition_database_of_both_tables_shares_one_cache_and_memtable_bound(
        tmp_path) -> None:
    """A worker's RocksDB memory does not grow with the partitions: every partition database
    of both tables charges its memtables to one write buffer manager (and reads through one
    block cache). 40 MB written over 16 partitions (2.5 MB each, under the 4 MB at which a
    memtable flushes by itself): unbounded, the memtables hold it all; bounded at 4 MB, the
    largest are flushed and the total stays near the bound plus each memtable's first arena
    block."""
    def usage(memtables_mb: int, name: str) -> tuple[int, Tables]:
        settings = AggregatorSettings(store="rocksdb://", rocksdb_memtables_mb=memtables_mb,
                                      rocksdb_cache_mb=2)
        app = faust.App(name, datadir=str(tmp_path / name), autodiscover=False)
        tables = Tables.define(app, 16, settings)
        stores = [tables.alliances.data, tables.companies.data]
        assert len({id(store.rocksdb_options.shared) for store in stores}) == 1
        for n in range(40_000):
            key = f"shared-{n}".encode()
            stores[0]._db_for_partition(partition_for(key, 16))[key] = FILLER
        for partition in range(16):
            stores[1]._db_for_partition(partition)[b"k"] = FILLER
        return stores[0].rocksdb_options.shared.memtables.get_usage(), tables

    unbounded, _ = usage(1024, "unbounded")
    bounded, tables = usage(4, "bounded")
    assert unbounded > 40 * 2**20
    assert bounded < unbounded / 2
    store = tables.alliances.data
    for n in range(0, 40_000, 997):  # flushed rows read back, through the shared cache
        key = f"shared-{n}".encode()
        assert store._db_for_partition(partition_for(key, 16))[key] == FILLER
    assert store.rocksdb_options.shared.cache.get_usage() > 0


FILLER = b"x" * 1000
