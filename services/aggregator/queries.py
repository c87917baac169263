"""What the query API answers, as pure functions over alliance states and the company index.

The response models here are also the source of the OpenAPI document (`openapi.py`), so the
document describes exactly what the views send. Parsing query parameters lives here too:
a bad value raises `QueryError`, which the views answer with 400 and its message.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from copy import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.aggregator.index import partners_by_stage
from services.aggregator.listing import (
    AllianceEntry,
    CompanyEntry,
    CursorError,
    Selection,
    SortKey,
    company_rank,
    decode_cursor,
    encode_cursor,
    fold,
    micros,
)
from shared.contracts import (
    AllianceState,
    CompanyIndex,
    Observation,
    Stage,
    StageTransition,
    company_key,
)


class QueryError(ValueError):
    """A bad query parameter; the API answers 400 with this message."""


@dataclass(frozen=True)
class Limit:
    """Default and maximum of a count parameter (`limit`, `depth`)."""

    default: int
    maximum: int

    def parse(self, name: str, value: str | None) -> int:
        if value is None or not value.strip():
            return self.default
        try:
            number = int(value.strip())
        except ValueError:
            number = 0
        if not 1 <= number <= self.maximum:
            raise QueryError(f"{name} must be a whole number from 1 to {self.maximum}, got "
                             f"{value!r}")
        return number


class Scope:
    """`scope` of list endpoints: the whole view, or only the answering worker's shards."""

    ALL = "all"
    LOCAL = "local"


#: `companies` (comma-separated slugs, with scope=local only) is what workers ask each other
#: on each hop of the /graph walk. `as_of` is time travel (timetravel.py).
LIST_PARAMS = ("company", "stage", "since", "until", "as_of", "limit", "cursor", "scope",
               "companies")
#: /graph: the list's filters and paging, or a company and how far to walk from it.
GRAPH_PARAMS = ("company", "depth", "stage", "since", "until", "as_of", "limit", "cursor")
COMPANY_SEARCH_PARAMS = ("q", "limit", "scope")
LIST_LIMIT = Limit(default=100, maximum=1000)
GRAPH_LIMIT = Limit(default=200, maximum=1000)
COMPANY_LIMIT = Limit(default=10, maximum=100)
GRAPH_DEPTH = Limit(default=1, maximum=3)


# ------------------------------------------------------------------ response models


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _as_in_state(name: str) -> Any:
    """The field of `AllianceState` called `name` (type, default, description), so the
    summary cannot drift from the state it summarises (a unit test checks the two agree)."""
    return copy(AllianceState.model_fields[name])


class AllianceSummary(_Response):
    # One line: the OpenAPI document shows the docstring as it is.
    """One alliance as listed by the API: its `AllianceState` without the supporting observations (see /alliances/{id}/history for those)."""  # noqa: E501

    schema_version: Literal[1] = _as_in_state("schema_version")
    alliance_id: str = _as_in_state("alliance_id")
    parties: list[str] = _as_in_state("parties")
    stage: Stage = _as_in_state("stage")
    episode: int = _as_in_state("episode")
    areas: list[str] = _as_in_state("areas")
    first_seen: AwareDatetime = _as_in_state("first_seen")
    last_changed: AwareDatetime = _as_in_state("last_changed")
    confidence: float = _as_in_state("confidence")
    sources: list[str] = _as_in_state("sources")
    article_count: int = _as_in_state("article_count")
    history: list[StageTransition] = _as_in_state("history")
    updated_at: AwareDatetime = _as_in_state("updated_at")


class AllianceList(_Response):
    """One page of the alliances matching the filters, most recently changed first."""

    count: int = Field(description="Number of alliances returned (in this page).")
    partitions: list[int] = Field(description="Partitions of the view this answer covers: "
                                  "all of them, or the answering worker's with scope=local.")
    alliances: list[AllianceSummary] = Field(description="The alliances.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` (with the same "
                                    "filters) for the next page; null on the last page.")


class AllianceHistory(_Response):
    """Every stage transition of one alliance with its evidence, and the supporting events."""

    alliance_id: str
    parties: list[str]
    stage: Stage = Field(description="Current stage.")
    episode: int = Field(description="Current episode.")
    history: list[StageTransition] = Field(description="Stage transitions, oldest first, each "
                                           "with the article and evidence that caused it.")
    observations: list[Observation] = Field(description="Every supporting partnership event "
                                            "kept, by publication time.")


class CompanyAlliance(_Response):
    """One alliance of a company."""

    alliance_id: str
    partners: list[str] = Field(description="The other parties.")
    stage: Stage
    episode: int
    last_changed: AwareDatetime


class CompanyView(_Response):
    """A company's partners, grouped by the stage of the alliance they share."""

    company: str = Field(description="Canonical company name.")
    key: str = Field(description="Slug the index is keyed by.")
    alliance_count: int
    partners_by_stage: dict[Stage, list[str]] = Field(description="Stage -> partner names; "
                                                      "only stages with partners appear.")
    alliances: list[CompanyAlliance]


class GraphNode(_Response):
    """A company."""

    id: str = Field(description="Company slug, referenced by edges.")
    label: str = Field(description="Canonical company name.")
    alliance_count: int
    stages: dict[Stage, int] = Field(description="Number of its alliances per stage.")


class GraphEdge(_Response):
    """Two companies in one alliance (an alliance of n parties gives n(n-1)/2 edges)."""

    source: str = Field(description="Node id.")
    target: str = Field(description="Node id.")
    alliance_id: str
    stage: Stage
    episode: int
    confidence: float
    last_changed: AwareDatetime


class Graph(_Response):
    """Companies as nodes and alliances as edges, for visualisation."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    next_cursor: str | None = Field(None, description="Without `company`: pass as `cursor` "
                                    "for the edges of the next page of alliances; null on the "
                                    "last page, and always with `company`.")
    truncated: bool = Field(False, description="With `company`: the walk stopped at `limit` "
                            "alliances before reaching `depth` everywhere.")


class CompanyMatch(_Response):
    """A company whose name or slug starts with the prefix typed."""

    name: str = Field(description="Canonical company name.")
    key: str = Field(description="Slug the index is keyed by (use it as `company`).")
    alliance_count: int = Field(description="Alliances of the company in the view.")


class CompanyMatches(_Response):
    """Type-ahead over the company index: best first (an exact name or slug, then more
    alliances, then by name)."""

    companies: list[CompanyMatch]
    partitions: list[int] = Field(description="Partitions of the company index this answer "
                                  "covers: all of them, or the answering worker's with "
                                  "scope=local.")


class Health(_Response):
    """Readiness of one worker (200 ready; 503 starting, rebalancing or stalled)."""

    service: str
    status: str = Field(description="ready, starting or stalled.")
    worker: str = Field(description="URL of this worker.")
    assigned_partitions: int = Field(description="Topic partitions assigned to this worker "
                                     "(every topic it consumes).")
    recovered: bool = Field(description="Tables restored from their changelogs.")
    partitions: list[int] = Field(description="Partitions of the alliance table this worker "
                                  "owns.")
    alliances: int = Field(description="Alliances in those partitions.")
    workers: list[str] = Field(description="URLs of every worker owning a partition.")
    stalled: list[dict[str, Any]] = Field(default_factory=list, description="Consumed "
                                          "partitions behind their end whose committed offset "
                                          "has not moved for RADAR_STALL_AFTER_S (then status "
                                          "is stalled and the answer 503).")


class ErrorBody(_Response):
    """What went wrong (4xx: the request; 503: the cluster is starting or rebalancing)."""

    error: str


# ------------------------------------------------------------------ parameters


def parse_stage(value: str | None) -> Stage | None:
    if value is None or not value.strip():
        return None
    try:
        return Stage(value.strip().lower())
    except ValueError:
        raise QueryError(f"unknown stage {value!r}; expected one of "
                         f"{', '.join(s.value for s in Stage)}") from None


def parse_since(value: str | None, name: str = "since") -> datetime | None:
    """An ISO date (midnight UTC) or date-time; a time without zone is taken as UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name} must be an ISO date like 2024-03-01 or a date-time like "
                         f"2024-03-01T08:00:00Z, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_as_of(value: str | None) -> datetime | None:
    """`as_of` (time travel, `timetravel.py`): an ISO date means the end of that day (UTC),
    so `2007-12-31` includes New Year's Eve's news; a date-time is that instant."""
    if value is None or not value.strip():
        return None
    try:
        when = parse_since(value)
    except QueryError:
        raise QueryError(f"as_of must be an ISO date like 2007-12-31 or a date-time like "
                         f"2007-12-31T18:00:00Z, got {value!r}") from None
    assert when is not None
    return when + timedelta(days=1, microseconds=-1) if len(value.strip()) == 10 else when


def parse_company(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return company_key(value)
    except ValueError as exc:
        raise QueryError(f"company: {exc}") from None


def parse_companies(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    slugs = frozenset(parse_company(v) for v in value.split(",") if v.strip())
    if not slugs:
        raise QueryError("companies: give at least one company slug")
    return slugs  # type: ignore[return-value]  # parse_company of a non-blank is a slug


def parse_scope(value: str | None) -> str:
    if value in (None, "", Scope.ALL):
        return Scope.ALL
    if value == Scope.LOCAL:
        return Scope.LOCAL
    raise QueryError(f"scope must be {Scope.ALL!r} or {Scope.LOCAL!r}, got {value!r}")


def reject_unknown(query: Mapping[str, str], allowed: Iterable[str]) -> None:
    """A misspelt filter (`?stgae=talks`) must not silently return everything."""
    allowed = tuple(allowed)
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise QueryError(f"unknown query parameter(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(allowed) or 'none'}")


@dataclass(frozen=True)
class Filters:
    """Filters of /alliances and /graph. `company` is kept as its slug."""

    company: str | None = None
    stage: Stage | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None  # the view as of this instant (timetravel.py)

    @classmethod
    def from_query(cls, query: Mapping[str, str],
                   allowed: Iterable[str] = LIST_PARAMS) -> Filters:
        reject_unknown(query, allowed)
        filters = cls(company=parse_company(query.get("company")),
                      stage=parse_stage(query.get("stage")),
                      since=parse_since(query.get("since"), "since"),
                      until=parse_since(query.get("until"), "until"),
                      as_of=parse_as_of(query.get("as_of")))
        if filters.since and filters.until and filters.since > filters.until:
            raise QueryError("since is after until: nothing can match")
        return filters

    def matches(self, state: Any) -> bool:
        """For an AllianceState or AllianceSummary: involves the company, is at the stage,
        and changed stage between `since` and `until` (both included); the same test the
        ordered index applies."""
        return self.selection().admits(AllianceEntry.of(state))

    def selection(self, companies: frozenset[str] | None = None) -> Selection:
        """The same filters for the ordered index (`listing.py`)."""
        return Selection(company=self.company, stage=self.stage.value if self.stage else None,
                         since=micros(self.since) if self.since else None,
                         until=micros(self.until) if self.until else None,
                         companies=companies)

    def fingerprint(self) -> str:
        """What a cursor is bound to: a cursor of one filter set paging another list
        would skip or repeat rows silently."""
        canonical = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def params(self) -> dict[str, str]:
        """The same filters as query parameters (to ask other workers)."""
        out: dict[str, str] = {}
        if self.company:
            out["company"] = self.company
        if self.stage:
            out["stage"] = self.stage.value
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        if self.as_of:
            out["as_of"] = self.as_of.isoformat()
        return out


@dataclass(frozen=True)
class Page:
    """Paging of a list: how many rows, and after which row (decoded from the cursor)."""

    limit: int
    after: SortKey | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], filters: Filters,
                   limits: Limit = LIST_LIMIT) -> Page:
        limit = limits.parse("limit", query.get("limit"))
        cursor = query.get("cursor")
        if not cursor:
            return cls(limit)
        try:
            return cls(limit, decode_cursor(cursor, filters.fingerprint()))
        except CursorError as exc:
            raise QueryError(f"cursor: {exc}") from None

    def params(self, cursor: str | None) -> dict[str, str]:
        return {"limit": str(self.limit)} | ({"cursor": cursor} if cursor else {})


# ------------------------------------------------------------------ answers


def summarize(state: AllianceState) -> AllianceSummary:
    return AllianceSummary.model_validate(state.model_dump(exclude={"observations"}))


def sort_key(row: Any) -> SortKey:
    """The list order of an alliance (state or summary), as the index keeps it."""
    return micros(row.last_changed), row.alliance_id


def alliance_list(rows: Iterable[AllianceSummary], partitions: Iterable[int],
                  limit: int | None = None, more: bool = False,
                  filters: Filters | None = None) -> AllianceList:
    """Rows newest first, cut to `limit`; a next cursor when rows were cut or `more`
    follow (a worker's share says so with its own next cursor)."""
    ordered = sorted(rows, key=sort_key, reverse=True)
    if limit is not None and len(ordered) > limit:
        ordered, more = ordered[:limit], True
    cursor = None
    if more and ordered:
        cursor = encode_cursor(sort_key(ordered[-1]), (filters or Filters()).fingerprint())
    return AllianceList(count=len(ordered), partitions=sorted(partitions), alliances=ordered,
                        next_cursor=cursor)


def company_matches(rows: Iterable[CompanyEntry], prefix: str, limit: int,
                    partitions: Iterable[int]) -> CompanyMatches:
    """The best `limit` of `rows` (one worker's, or every worker's merged)."""
    best = sorted(rows, key=lambda e: company_rank(e, prefix))[:limit]
    return CompanyMatches(companies=[CompanyMatch(name=e.name, key=e.key,
                                                  alliance_count=e.alliance_count)
                                     for e in best], partitions=sorted(partitions))


def parse_prefix(value: str | None) -> str:
    prefix = fold(value or "")
    if not prefix:
        raise QueryError("q (the start of a company name or slug) is required")
    return prefix


def history_of(state: AllianceState) -> AllianceHistory:
    return AllianceHistory(alliance_id=state.alliance_id, parties=state.parties,
                           stage=state.stage, episode=state.episode, history=state.history,
                           observations=state.observations)


def company_view(index: CompanyIndex) -> CompanyView:
    return CompanyView(
        company=index.company, key=index.key, alliance_count=len(index.alliances),
        partners_by_stage=partners_by_stage(index),
        alliances=[CompanyAlliance(alliance_id=link.alliance_id, partners=link.partners,
                                   stage=link.stage, episode=link.episode,
                                   last_changed=link.last_changed)
                   for link in index.alliances])


def build_graph(rows: Iterable[Any], next_cursor: str | None = None) -> Graph:
    """Nodes and edges from alliance summaries (or states), deterministic order."""
    labels: dict[str, str] = {}
    stages: dict[str, Counter[Stage]] = {}
    edges: list[GraphEdge] = []
    for row in sorted(rows, key=lambda r: r.alliance_id):
        ids = []
        for party in row.parties:
            node = company_key(party)
            labels.setdefault(node, party)
            stages.setdefault(node, Counter())[row.stage] += 1
            ids.append(node)
        ids.sort()
        for i, source in enumerate(ids):
            for target in ids[i + 1:]:
                edges.append(GraphEdge(source=source, target=target,
                                       alliance_id=row.alliance_id, stage=row.stage,
                                       episode=row.episode, confidence=row.confidence,
                                       last_changed=row.last_changed))
    nodes = [GraphNode(id=node, label=labels[node], alliance_count=sum(stages[node].values()),
                       stages={s: stages[node][s] for s in Stage if stages[node][s]})
             for node in sorted(labels)]
    return Graph(nodes=nodes, edges=edges, next_cursor=next_cursor)
