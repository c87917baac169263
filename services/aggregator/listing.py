"""Ordered indexes over one worker's share of the view, so that a page of `/alliances`, a hop
of the `/graph` walk or a company type-ahead costs O(limit · log n) rather than a scan of the
table, and the opaque cursor that pages through them.

Per partition of the `alliances` table, `AllianceIndex` keeps the alliances ordered by
(last_changed, alliance_id) three ways: all of them, per stage and per company (slug). A page
walks the one list that fits the filters from the cursor down, for every partition the worker
owns, merged (`heapq.merge`), and stops after `limit + 1` rows (the extra one says whether
there is a next page). Per partition of the `companies` table, `CompanyNames` keeps every
company's folded name and slug in sorted order: a prefix is a range.

Both are plain data structures (no Kafka): the agents update them after each acknowledged
table write and the recovery callback rebuilds the partitions a worker takes over
(`services.aggregator.tables`). They hold only what ordering and filtering need; the rows
themselves are read from the table.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Generic, TypeVar

from pydantic import AwareDatetime, BaseModel
from sortedcontainers import SortedList

from shared.contracts import company_key

CURSOR_VERSION = 1

#: (last_changed in µs since the epoch, alliance_id): the list order, newest first.
SortKey = tuple[int, str]
E = TypeVar("E")
P = TypeVar("P")


class CursorError(ValueError):
    """A cursor that is not one of ours, of another version, or made for other filters."""


def micros(moment: datetime) -> int:
    """A time as integer microseconds since the epoch (exact: datetimes have µs)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ------------------------------------------------------------------ cursor


def encode_cursor(after: SortKey, filters_hash: str) -> str:
    """The cursor of the page that follows the row `after`, for the filters hashed."""
    body = json.dumps({"v": CURSOR_VERSION, "t": after[0], "id": after[1],
                       "f": filters_hash}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, filters_hash: str) -> SortKey:
    """The row a cursor continues after; `CursorError` when it is not ours, of another
    version, or was made for other filters (its page would be a different list)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("cursor is not one this API gave out (pass next_cursor as it "
                          "came)") from None
    if not isinstance(body, dict) or body.get("v") != CURSOR_VERSION:
        version = body.get("v") if isinstance(body, dict) else None
        raise CursorError(f"cursor version {version!r} is not {CURSOR_VERSION}; start "
                          "again without a cursor")
    moment, alliance_id, made_for = body.get("t"), body.get("id"), body.get("f")
    if not isinstance(moment, int) or not isinstance(alliance_id, str) or \
            not isinstance(made_for, str):
        raise CursorError("cursor is not one this API gave out (pass next_cursor as it came)")
    if made_for != filters_hash:
        raise CursorError("cursor was made for other filters; page with the filters it "
                          "came with, or start again without a cursor")
    return moment, alliance_id


# ------------------------------------------------------------------ alliances


class _Listed(BaseModel):
    """The fields of an `AllianceState` the index keeps (parsing only these is several
    times faster than the whole state, which matters when a partition is rebuilt)."""

    alliance_id: str
    parties: list[str]
    stage: str
    last_changed: AwareDatetime


@dataclass(frozen=True, slots=True)
class AllianceEntry:
    alliance_id: str
    last_changed: int  # µs since the epoch
    stage: str
    companies: tuple[str, ...]  # party slugs
    #: (last_changed, alliance_id), made once: every sorted list holds this one tuple.
    sort_key: SortKey = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sort_key", (self.last_changed, self.alliance_id))

    @classmethod
    def of(cls, state: _Listed | BaseModel) -> AllianceEntry:
        stage = getattr(state.stage, "value", state.stage)
        return cls(state.alliance_id, micros(state.last_changed), str(stage),
                   tuple(sorted({company_key(p) for p in state.parties})))

    @classmethod
    def from_json(cls, raw: bytes) -> AllianceEntry:
        return cls.of(_Listed.model_validate_json(raw))


@dataclass(frozen=True)
class Selection:
    """Which alliances a page lists: the filters of /alliances, times in µs (inclusive)."""

    company: str | None = None
    stage: str | None = None
    since: int | None = None
    until: int | None = None
    #: A graph hop: alliances of any of these companies (overrides `company`).
    companies: frozenset[str] | None = None

    def admits(self, entry: AllianceEntry) -> bool:
        if self.stage is not None and entry.stage != self.stage:
            return False
        if self.since is not None and entry.last_changed < self.since:
            return False
        if self.until is not None and entry.last_changed > self.until:
            return False
        wanted = self.companies if self.companies is not None else \
            ({self.company} if self.company else None)
        return wanted is None or not wanted.isdisjoint(entry.companies)


@dataclass
class _PartitionAlliances:
    entries: dict[str, AllianceEntry] = field(default_factory=dict)
    ordered: SortedList = field(default_factory=SortedList)
    by_stage: dict[str, SortedList] = field(default_factory=dict)
    by_company: dict[str, SortedList] = field(default_factory=dict)

    def _lists(self, entry: AllianceEntry) -> Iterator[tuple[dict[str, SortedList] | None,
                                                             str | None]]:
        yield None, None
        yield self.by_stage, entry.stage
        for company in entry.companies:
            yield self.by_company, company

    def put(self, entry: AllianceEntry) -> None:
        self.remove(entry.alliance_id)
        self.entries[entry.alliance_id] = entry
        for group, name in self._lists(entry):
            if group is None:
                self.ordered.add(entry.sort_key)
            else:
                group.setdefault(name, SortedList()).add(entry.sort_key)

    def remove(self, alliance_id: str) -> None:
        entry = self.entries.pop(alliance_id, None)
        if entry is None:
            return
        for group, name in self._lists(entry):
            if group is None:
                self.ordered.remove(entry.sort_key)
                continue
            keys = group[name]
            keys.remove(entry.sort_key)
            if not keys:
                del group[name]  # a company or stage without alliances costs nothing

    def walk(self, selection: Selection, after: SortKey | None) -> Iterator[AllianceEntry]:
        """Entries admitted by `selection`, newest first, strictly after `after`."""
        bottom, top = bounds(selection, after)
        walks = []
        for group, name in lists_for(selection):
            keys = self.ordered if group == ALL else \
                (self.by_stage if group == STAGE else self.by_company).get(name)
            if keys:
                walks.append(self.entries[k[1]] for k in keys.irange(
                    minimum=bottom, maximum=top, inclusive=(True, False), reverse=True))
        return merge_walks(walks, selection)


#: The three kinds of ordered list of a partition: all alliances, one stage's, one company's.
ALL, STAGE, COMPANY = "all", "stage", "company"


def lists_for(selection: Selection) -> list[tuple[str, str]]:
    """The ordered lists a walk reads: the narrowest that fits the filters (the others are
    checked entry by entry with `Selection.admits`)."""
    if selection.companies is not None:
        return [(COMPANY, c) for c in sorted(selection.companies)]
    if selection.company is not None:
        return [(COMPANY, selection.company)]
    if selection.stage is not None:
        return [(STAGE, selection.stage)]
    return [(ALL, "")]


def bounds(selection: Selection, after: SortKey | None) -> tuple[tuple | None, tuple | None]:
    """The walk's range of sort keys: from the top (exclusive: the cursor's row or just
    past `until`) down to `since` (inclusive). A shorter tuple sorts before every longer
    one it prefixes, so (t,) is below every (t, id) and (t + 1,) above."""
    top: tuple | None = (selection.until + 1,) if selection.until is not None else None
    if after is not None and (top is None or after < top):
        top = after
    bottom = (selection.since,) if selection.since is not None else None
    return bottom, top


def merge_walks(walks: list[Iterator[AllianceEntry]], selection: Selection
                ) -> Iterator[AllianceEntry]:
    """Several descending walks of one partition as one, each alliance once (an alliance
    of two of the companies of a graph hop is on both lists), filtered by `selection`."""
    last = None
    for entry in heapq.merge(*walks, key=_sort_key, reverse=True):
        if entry.sort_key == last:
            continue
        last = entry.sort_key
        if selection.admits(entry):
            yield entry


def _sort_key(entry: AllianceEntry) -> SortKey:
    return entry.sort_key


def first_page(walks: Iterable[Iterator[AllianceEntry]], limit: int
               ) -> tuple[list[AllianceEntry], bool]:
    """The first `limit` entries of the partitions' walks merged, newest first, and whether
    more follow."""
    rows = list(islice(heapq.merge(*walks, key=_sort_key, reverse=True), limit + 1))
    return rows[:limit], len(rows) > limit


class _ByPartition(Generic[E, P]):
    """One index per partition this worker owns, `P` holding entries `E`."""

    def __init__(self, held: Callable[[], P]) -> None:
        self._held = held
        self._partitions: dict[int, P] = {}

    def put(self, partition: int, entry: E) -> None:
        """Index a table write. A partition not indexed (not owned since the last recovery:
        a write that finished after its partition was revoked) is ignored; it is indexed
        afresh from the table if it comes back."""
        if partition in self._partitions:
            self._partitions[partition].put(entry)  # type: ignore[attr-defined]

    def replace(self, partition: int, entries: Iterable[E]) -> None:
        """Index `partition` afresh with `entries` (a partition this worker takes over)."""
        fresh = self._held()
        for entry in entries:
            fresh.put(entry)  # type: ignore[attr-defined]
        self._partitions[partition] = fresh

    def drop(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def indexed(self) -> set[int]:
        return set(self._partitions)

    def _of(self, partitions: Iterable[int]) -> list[P]:
        return [held for p in sorted(set(partitions))
                if (held := self._partitions.get(p)) is not None]


class AllianceIndex(_ByPartition[AllianceEntry, _PartitionAlliances]):
    """Per partition, the alliances in list order (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(_PartitionAlliances)

    def remove(self, partition: int, alliance_id: str) -> None:
        if partition in self._partitions:
            self._partitions[partition].remove(alliance_id)

    def count(self, partition: int) -> int:
        held = self._partitions.get(partition)
        return len(held.entries) if held else 0

    def page(self, partitions: Iterable[int], selection: Selection, after: SortKey | None,
             limit: int) -> tuple[list[AllianceEntry], bool]:
        """The first `limit` entries of `partitions` after `after`, newest first, and
        whether more follow."""
        return first_page((held.walk(selection, after) for held in self._of(partitions)),
                          limit)

    def stage_counts(self, partitions: Iterable[int]) -> dict[str, int]:
        """Alliances per stage in `partitions`."""
        out: dict[str, int] = {}
        for held in self._of(partitions):
            for stage, keys in held.by_stage.items():
                out[stage] = out.get(stage, 0) + len(keys)
        return out


# ------------------------------------------------------------------ companies


@dataclass(frozen=True, slots=True)
class CompanyEntry:
    key: str
    name: str
    alliance_count: int

    @classmethod
    def of(cls, index: BaseModel) -> CompanyEntry:
        """The entry of a `CompanyIndex` row."""
        return cls(index.key, index.company, len(index.alliances))  # type: ignore[attr-defined]

    def terms(self) -> set[str]:
        """What a prefix is matched against: the name in any case, and the slug."""
        return {self.name.casefold(), self.key}


def fold(text: str) -> str:
    """A typed prefix as the terms are kept (case-folded, outer spaces dropped)."""
    return text.strip().casefold()


def company_rank(entry: CompanyEntry, prefix: str) -> tuple[bool, int, str, str]:
    """Sort key, best first: an exact name or slug, then more alliances, then by name."""
    exact = prefix in entry.terms()
    return (not exact, -entry.alliance_count, entry.name.casefold(), entry.key)


@dataclass
class _PartitionCompanies:
    entries: dict[str, CompanyEntry] = field(default_factory=dict)
    terms: SortedList = field(default_factory=SortedList)  # (term, key)

    def put(self, entry: CompanyEntry) -> None:
        self.remove(entry.key)
        self.entries[entry.key] = entry
        for term in entry.terms():
            self.terms.add((term, entry.key))

    def remove(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            for term in entry.terms():
                self.terms.remove((term, entry.key))

    def matching(self, prefix: str) -> Iterator[CompanyEntry]:
        seen = set()
        for term, key in self.terms.irange(minimum=(prefix,)):
            if not term.startswith(prefix):
                break
            if key not in seen:
                seen.add(key)
                yield self.entries[key]


class CompanyNames(_ByPartition[CompanyEntry, _PartitionCompanies]):
    """Per partition of the company index, names and slugs in sorted order."""

    def __init__(self) -> None:
        super().__init__(_PartitionCompanies)

    def search(self, partitions: Iterable[int], prefix: str, limit: int
               ) -> list[CompanyEntry]:
        """The best `limit` companies of `partitions` whose name or slug starts with
        `prefix` (already folded)."""
        found = (entry for held in self._of(partitions) for entry in held.matching(prefix))
        return heapq.nsmallest(limit, found, key=lambda e: company_rank(e, prefix))

    def count(self, partitions: Iterable[int]) -> int:
        return sum(len(held.entries) for held in self._of(partitions))

    def top(self, partitions: Iterable[int], limit: int) -> list[CompanyEntry]:
        """The `limit` companies with the most alliances (ties by slug)."""
        everyone = (e for held in self._of(partitions) for e in held.entries.values())
        return heapq.nsmallest(limit, everyone, key=lambda e: (-e.alliance_count, e.key))


def rebuild_plan(indexed: set[int], active: set[int]) -> tuple[set[int], set[int]]:
    """After a recovery: the partitions to (re)index, and those to forget. A partition that
    stayed active was written only by this worker's agents, which kept its index current;
    one taken over was written elsewhere meanwhile and is indexed afresh from the table."""
    return active - indexed, indexed - active
