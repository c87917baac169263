"""Which aggregator worker answers what: pure functions over Faust's assignment metadata.

Every worker learns the whole assignment at each rebalance: Faust's partition assignor puts
each member's web URL (`canonical_url`) into the group protocol, and `app.router.
table_metadata(table)` returns `{worker url: {changelog topic: [active partitions]}}`. A key
lives in the partition the default Kafka partitioner (murmur2, as in the Java client and
aiokafka) gives it, which is where the extractor and the company-index agent wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka.partitioner import murmur2
from yarl import URL

HostToPartitions = Mapping[str, Mapping[str, Sequence[int]]]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner puts `key` in."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def owners(metadata: HostToPartitions, topic: str) -> dict[int, str]:
    """Partition -> URL of the worker that owns it (active, not standby)."""
    return {p: url for url, topics in metadata.items() for p in topics.get(topic, ())}


def missing_partitions(metadata: HostToPartitions, topic: str, partitions: int) -> list[int]:
    """Partitions no worker owns (a group still forming or rebalancing)."""
    owned = owners(metadata, topic)
    return [p for p in range(partitions) if p not in owned]


def workers(metadata: HostToPartitions, topic: str) -> list[str]:
    """URLs of the workers owning at least one partition of `topic`, sorted."""
    return sorted({url for url, topics in metadata.items() if topics.get(topic)})


def same_worker(a: str | URL, b: str | URL) -> bool:
    ua, ub = URL(str(a)), URL(str(b))
    return (ua.host, ua.port) == (ub.host, ub.port)
