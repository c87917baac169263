"""The aggregator's tables and what reads them: the `alliances` table (AllianceState JSON per
alliance id) and the `companies` table (CompanyIndex JSON per company slug), co-partitioned
with the partnership and company-index topics.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from services.aggregator.routing import partition_for
from shared.contracts import AllianceState, CompanyIndex


def load_state(raw: bytes | None) -> AllianceState | None:
    return AllianceState.model_validate_json(raw) if raw else None


def load_index(raw: bytes | None) -> CompanyIndex | None:
    return CompanyIndex.model_validate_json(raw) if raw else None


@dataclass(frozen=True)
class Tables:
    app: faust.App
    alliances: faust.Table
    companies: faust.Table
    partitions: int

    @classmethod
    def define(cls, app: faust.App, partitions: int) -> Tables:
        # bytes keys and values pass through Faust's codecs untouched: values are pydantic
        # JSON.
        return cls(app,
                   app.Table("alliances", key_type=bytes, value_type=bytes,
                             partitions=partitions),
                   app.Table("companies", key_type=bytes, value_type=bytes,
                             partitions=partitions),
                   partitions)

    def key_partition(self, key: bytes) -> int:
        """The partition of `key` in every topic and table of this app (all
        co-partitioned)."""
        return partition_for(key, self.partitions)

    def active_partitions(self, table: faust.Table) -> set[int]:
        """Partitions of `table` this worker owns (standby copies excluded)."""
        topic = table.changelog_topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives()
                if tp.topic == topic}

    def local_states(self) -> list[AllianceState]:
        """The alliances of this worker's active partitions. The in-memory store also holds
        standby copies and keys of partitions that moved away; those are other workers' to
        answer."""
        owned = self.active_partitions(self.alliances)
        out = []
        for key, raw in list(self.alliances.items()):
            if raw and self.key_partition(key) in owned:
                out.append(AllianceState.model_validate_json(raw))
        return out

    def local_count(self, table: faust.Table, owned: set[int]) -> int:
        """Keys of `table` in the partitions `owned`."""
        return sum(1 for key in list(table.keys()) if self.key_partition(key) in owned)
