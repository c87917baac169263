"""The aggregator's tables and what reads them: the `alliances` table (AllianceState JSON per
alliance id) and the `companies` table (CompanyIndex JSON per company slug), co-partitioned
with the partnership and company-index topics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import faust

from services.aggregator import metrics as agg_metrics
from services.aggregator.listing import (
    AllianceEntry,
    AllianceIndex,
    CompanyEntry,
    CompanyNames,
    rebuild_plan,
)
from services.aggregator.ondisk import (
    DiskAllianceIndex,
    DiskCompanyNames,
    SharedMemory,
    alliance_delta,
    company_delta,
    define_table,
)
from services.aggregator.routing import partition_for
from shared.contracts import AllianceState, CompanyIndex
from shared.settings import AggregatorSettings, TableStore

log = logging.getLogger(__name__)


def load_state(raw: bytes | None) -> AllianceState | None:
    return AllianceState.model_validate_json(raw) if raw else None


def load_index(raw: bytes | None) -> CompanyIndex | None:
    return CompanyIndex.model_validate_json(raw) if raw else None


def company_entry(index: CompanyIndex) -> CompanyEntry:
    return CompanyEntry.of(index)


@dataclass(frozen=True)
class Tables:
    app: faust.App
    alliances: faust.Table
    companies: faust.Table
    partitions: int
    #: Ordered indexes of this worker's partitions (`listing.py`). In memory (memory://):
    #: written after each acknowledged table write, rebuilt for the partitions a recovery
    #: hands over. On disk (rocksdb://, `ondisk.py`): kept by the store itself, in the same
    #: write as each row.
    alliance_index: AllianceIndex | DiskAllianceIndex
    company_names: CompanyNames | DiskCompanyNames

    @property
    def in_memory(self) -> bool:
        return isinstance(self.alliance_index, AllianceIndex)

    @classmethod
    def define(cls, app: faust.App, partitions: int,
               settings: AggregatorSettings | None = None) -> Tables:
        settings = settings or AggregatorSettings()

        def partition_of(key: bytes) -> int:
            return partition_for(key, partitions)

        if settings.store is TableStore.ROCKSDB:
            options = {"write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
                       "max_write_buffer_number": 2}
            # One cache and one memtable bound for every partition database of both
            # tables: the worker's memory does not grow with the partition count.
            shared = SharedMemory(settings.rocksdb_cache_mb * 2**20,
                                  settings.rocksdb_memtables_mb * 2**20)
            alliances = define_table(app, "alliances", partitions, alliance_delta,
                                     partition_of, options, shared)
            companies = define_table(app, "companies", partitions, company_delta,
                                     partition_of, options, shared)
            return cls(app, alliances, companies, partitions,
                       DiskAllianceIndex(alliances.data), DiskCompanyNames(companies.data))
        # bytes keys and values pass through Faust's codecs untouched: values are pydantic
        # JSON.
        tables = cls(app,
                     app.Table("alliances", key_type=bytes, value_type=bytes,
                               partitions=partitions),
                     app.Table("companies", key_type=bytes, value_type=bytes,
                               partitions=partitions),
                     partitions, AllianceIndex(), CompanyNames())
        tables.alliances.on_recover(tables._reindex_alliances)
        tables.companies.on_recover(tables._reindex_companies)
        return tables

    def alliance_written(self, partition: int, state: AllianceState) -> None:
        if isinstance(self.alliance_index, AllianceIndex):
            self.alliance_index.put(partition, AllianceEntry.of(state))

    def company_written(self, partition: int, index: CompanyIndex) -> None:
        if isinstance(self.company_names, CompanyNames):
            self.company_names.put(partition, company_entry(index))

    def _taken_over(self, table: faust.Table, indexed: set[int]
                    ) -> tuple[dict[int, list[bytes]], set[int]]:
        """Values of the partitions of `table` to index afresh, and those to forget."""
        fresh, gone = rebuild_plan(indexed, self.active_partitions(table))
        values: dict[int, list[bytes]] = {p: [] for p in fresh}
        if fresh:
            for key, raw in list(table.data.items()):
                partition = self.key_partition(key)
                if raw and partition in values:
                    values[partition].append(raw)
        return values, gone

    async def _reindex_alliances(self) -> None:
        assert isinstance(self.alliance_index, AllianceIndex)
        started = time.monotonic()
        values, gone = self._taken_over(self.alliances, self.alliance_index.indexed())
        for partition in gone:
            self.alliance_index.drop(partition)
        for partition, raws in values.items():
            self.alliance_index.replace(partition, (AllianceEntry.from_json(r) for r in raws))
        if values or gone:
            log.info("alliance index: partitions %s indexed (%d alliances), %s dropped, in "
                     "%.3fs", sorted(values), sum(map(len, values.values())), sorted(gone),
                     time.monotonic() - started)

    async def _reindex_companies(self) -> None:
        assert isinstance(self.company_names, CompanyNames)
        values, gone = self._taken_over(self.companies, self.company_names.indexed())
        for partition in gone:
            self.company_names.drop(partition)
        for partition, raws in values.items():
            self.company_names.replace(
                partition, (company_entry(CompanyIndex.model_validate_json(r)) for r in raws))

    def key_partition(self, key: bytes) -> int:
        """The partition of `key` in every topic and table of this app (all
        co-partitioned)."""
        return partition_for(key, self.partitions)

    def active_partitions(self, table: faust.Table) -> set[int]:
        """Partitions of `table` this worker owns (standby copies excluded)."""
        topic = table.changelog_topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives()
                if tp.topic == topic}

    def local_states(self) -> Iterator[AllianceState]:
        """The alliances of this worker's active partitions, one at a time (a scan: time
        travel only). The in-memory store also holds standby copies and keys of partitions
        that moved away; those are other workers' to answer."""
        owned = self.active_partitions(self.alliances)
        items = self.alliances.items()
        if self.in_memory:
            items = list(items)  # the agents may write while a page is folded
        for key, raw in items:
            if raw and self.key_partition(key) in owned:
                yield AllianceState.model_validate_json(raw)

    def alliance_count(self, owned: set[int]) -> int:
        """Alliances in the partitions `owned`, from the index (no scan)."""
        return sum(self.alliance_index.count(p) for p in owned)

    def view_counts(self) -> tuple[dict[str, int], int, list[CompanyEntry]]:
        """This worker's alliances per stage, companies, and the companies with the most
        alliances (`metrics.TOP_COMPANIES`), from the indexes (no scan)."""
        alliances = self.active_partitions(self.alliances)
        companies = self.active_partitions(self.companies)
        return (self.alliance_index.stage_counts(alliances),
                self.company_names.count(companies),
                self.company_names.top(companies, agg_metrics.TOP_COMPANIES))
