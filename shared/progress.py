"""Is each consumed partition moving? A partition stalls when it has records to process
(its committed offset is behind the end), its committed offset has not moved for a while,
and either the consumer took records of it that were never finished (its position is past
the committed offset) or the consumer committed nothing at all in that time.

The last two conditions keep a busy consumer healthy: with a backlog, a client drains one
partition's fetched buffer before it turns to the next, so a partition can wait its turn for
longer than the stall time while the others move.

A consumer can be connected, assigned and recovered, and still never process a partition
again (a fetch position left behind by a rebalance, a hung send): readiness alone does not
see it, so /health asks this as well and answers 503 naming the partition. Pure: the
services feed it offsets; the clock is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stall:
    topic: str
    partition: int
    committed: int | None
    end: int
    seconds: float

    def as_json(self) -> dict[str, object]:
        return {"topic": self.topic, "partition": self.partition, "committed": self.committed,
                "end": self.end, "stalled_for_s": round(self.seconds, 1)}


@dataclass
class _Seen:
    committed: int | None
    since: float
    position: int | None = None


@dataclass
class ProgressWatch:
    """`observe()` each assigned partition's committed and end offsets now and then;
    `stalls()` lists the partitions that had lag and no progress for `stall_after_s`."""

    stall_after_s: float
    _seen: dict[tuple[str, int], _Seen] = field(default_factory=dict)
    _ends: dict[tuple[str, int], int] = field(default_factory=dict)
    _last_progress: float | None = None

    def observe(self, topic: str, partition: int, committed: int | None, end: int | None,
                now: float, position: int | None = None) -> None:
        """`position`: the next offset the consumer will hand out for this partition."""
        key = (topic, partition)
        if end is not None:
            self._ends[key] = end
        seen = self._seen.get(key)
        lag = self._ends.get(key, 0) - (committed or 0)
        if seen is not None and seen.committed != committed:
            self._last_progress = now
        if self._last_progress is None:
            self._last_progress = now
        if seen is None or seen.committed != committed or lag <= 0:
            # moved, or nothing to do: the clock restarts
            self._seen[key] = _Seen(committed, now, position)
        else:
            seen.position = position

    def keep_only(self, assigned: set[tuple[str, int]]) -> None:
        """Forget partitions no longer assigned (a revoked partition is not ours to move)."""
        for key in set(self._seen) - assigned:
            del self._seen[key]
            self._ends.pop(key, None)

    def stalls(self, now: float) -> list[Stall]:
        idle = self._last_progress is not None and \
            now - self._last_progress >= self.stall_after_s
        out = []
        for (topic, partition), seen in sorted(self._seen.items()):
            end = self._ends.get((topic, partition), 0)
            waited = now - seen.since
            taken = seen.position is not None and seen.position > (seen.committed or 0)
            if end > (seen.committed or 0) and waited >= self.stall_after_s \
                    and (taken or idle):
                out.append(Stall(topic, partition, seen.committed, end, waited))
        return out
