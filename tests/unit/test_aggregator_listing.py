"""The ordered indexes behind paging and type-ahead (`services/aggregator/listing.py`), and the
merge of workers' pages (`queries.alliance_list`), without Kafka."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.aggregator.listing import (
    AllianceEntry,
    AllianceIndex,
    CompanyEntry,
    CompanyNames,
    CursorError,
    decode_cursor,
    encode_cursor,
    fold,
    micros,
    rebuild_plan,
)
from services.aggregator.queries import (
    Filters,
    Page,
    QueryError,
    alliance_list,
    company_matches,
    sort_key,
    summarize,
)
from services.aggregator.routing import partition_for
from services.aggregator.state import apply
from shared.contracts import AllianceState, Evidence, PartnershipEvent, alliance_id_for

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PARTITIONS = 4
COMPANIES = [f"Firm {chr(65 + i)}" for i in range(10)]  # Firm A .. Firm J (165 alliances)
STAGES = ["rumored", "talks", "agreed", "active", "failed", "ended"]


def make_state(parties: list[str], stage: str, day: int) -> AllianceState:
    article = f"{alliance_id_for(parties)}-{stage}-{day}"
    event = PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.6, published_at=T0 + timedelta(days=day),
        evidence=[Evidence(sentence=f"{article}", start=0, end=3)])
    state, _ = apply(None, event)
    assert state is not None
    return state


def random_view(seed: int, size: int) -> list[AllianceState]:
    """`size` alliances of 2 or 3 firms; days drawn from a small range, so many share a
    last_changed (the tie-break by alliance_id matters)."""
    rng = random.Random(seed)
    states: dict[str, AllianceState] = {}
    while len(states) < size:
        parties = sorted(rng.sample(COMPANIES, rng.choice((2, 2, 3))))
        state = make_state(parties, rng.choice(STAGES), rng.randrange(12))
        states.setdefault(state.alliance_id, state)
    return list(states.values())


class Worker:
    """One worker's share: an index over its partitions and the table rows."""

    def __init__(self, partitions: set[int], states: list[AllianceState]) -> None:
        self.partitions = partitions
        self.index = AllianceIndex()
        self.rows = {}
        mine = [s for s in states if self.partition(s) in partitions]
        for p in partitions:
            self.index.replace(p, (AllianceEntry.of(s) for s in mine
                                   if self.partition(s) == p))
        self.rows = {s.alliance_id: summarize(s) for s in mine}

    @staticmethod
    def partition(state: AllianceState) -> int:
        return partition_for(state.alliance_id.encode(), PARTITIONS)

    def share(self, filters: Filters, page: Page):
        entries, more = self.index.page(self.partitions, filters.selection(), page.after,
                                        page.limit)
        return alliance_list([self.rows[e.alliance_id] for e in entries], self.partitions,
                             more=more, filters=filters)


def page_through(workers: list[Worker], query: dict[str, str]) -> list[list[str]]:
    """Every page as the API would answer it (each worker's first `limit` after the
    cursor, merged, cut to `limit`), following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        params = query | ({"cursor": cursor} if cursor else {})
        filters = Filters.from_query(params)
        page = Page.from_query(params, filters)
        shares = [w.share(filters, page) for w in workers]
        merged = alliance_list((r for s in shares for r in s.alliances),
                               (p for s in shares for p in s.partitions), limit=page.limit,
                               more=any(s.next_cursor for s in shares), filters=filters)
        assert merged.partitions == list(range(PARTITIONS))
        pages.append([r.alliance_id for r in merged.alliances])
        cursor = merged.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 1000, "paging does not end"


VIEW = random_view(7, 120)
WORKERS = [Worker({0, 2}, VIEW), Worker({1, 3}, VIEW)]


def expected(query: dict[str, str]) -> list[str]:
    filters = Filters.from_query(query)
    return [s.alliance_id for s in sorted(VIEW, key=sort_key, reverse=True)
            if filters.matches(s)]


@pytest.mark.parametrize("query", [
    {"limit": "7"},
    {"limit": "1"},
    {"limit": "1000"},
    {"limit": "5", "stage": "talks"},
    {"limit": "4", "company": "firm-c"},
    {"limit": "3", "company": "Firm A", "stage": "agreed"},
    {"limit": "6", "since": "2024-01-04", "until": "2024-01-08"},
    {"limit": "2", "company": "firm-b", "until": "2024-01-05T00:00:00Z"},
])
def test_paging_through_the_view_gives_every_alliance_once_in_order(query):
    pages = page_through(WORKERS, query)
    listed = [a for page in pages for a in page]
    assert listed == expected({k: v for k, v in query.items() if k != "limit"})
    assert len(listed) == len(set(listed))
    limit = int(query["limit"])
    assert all(len(p) == limit for p in pages[:-1]) and len(pages[-1]) <= limit
    assert listed, "each case lists something"


def test_one_worker_owning_every_partition_pages_the_same():
    alone = [Worker({0, 1, 2, 3}, VIEW)]
    assert page_through(alone, {"limit": "9"}) == page_through(WORKERS, {"limit": "9"})


def test_index_follows_writes_and_ignores_partitions_it_does_not_hold():
    index = AllianceIndex()
    index.replace(0, [])
    old = make_state(["Firm A", "Firm B"], "talks", 1)
    index.put(0, AllianceEntry.of(old))
    index.put(0, AllianceEntry.of(make_state(["Firm C", "Firm D"], "talks", 2)))
    moved = make_state(["Firm A", "Firm B"], "agreed", 5)  # same alliance, newer
    index.put(0, AllianceEntry.of(moved))

    def ids(**filters):
        entries, _ = index.page([0], Filters.from_query(filters).selection(), None, 10)
        return [e.alliance_id for e in entries]

    assert ids() == ["firm-a+firm-b", "firm-c+firm-d"]
    assert ids(stage="talks") == ["firm-c+firm-d"]
    assert ids(stage="agreed", company="firm-a") == ["firm-a+firm-b"]
    index.remove(0, "firm-a+firm-b")
    assert ids() == ["firm-c+firm-d"] and ids(company="firm-a") == []
    index.put(3, AllianceEntry.of(old))  # partition 3 is not held (revoked): ignored
    assert index.indexed() == {0} and index.count(3) == 0
    index.drop(0)
    assert index.page([0], Filters().selection(), None, 10) == ([], False)


def test_graph_hop_lists_alliances_of_any_company_once():
    index = AllianceIndex()
    index.replace(0, (AllianceEntry.of(s) for s in VIEW))
    selection = Filters().selection(frozenset({"firm-a", "firm-b"}))
    entries, more = index.page([0], selection, None, 1000)
    got = [e.alliance_id for e in entries]
    assert not more and len(got) == len(set(got))
    assert got == [s.alliance_id for s in sorted(VIEW, key=sort_key, reverse=True)
                   if {"firm-a", "firm-b"} & {p.lower().replace(" ", "-") for p in s.parties}]


def test_cursor_is_opaque_url_safe_versioned_and_bound_to_its_filters():
    talks = Filters.from_query({"stage": "talks"})
    cursor = encode_cursor((micros(T0), "firm-a+firm-b"), talks.fingerprint())
    assert all(c.isalnum() or c in "-_" for c in cursor)
    assert decode_cursor(cursor, talks.fingerprint()) == (micros(T0), "firm-a+firm-b")
    with pytest.raises(CursorError, match="other filters"):
        decode_cursor(cursor, Filters.from_query({"stage": "agreed"}).fingerprint())
    for bad in ("!!!", "bm90IGpzb24", encode_cursor((1, "x"), "f")[:-3]):
        with pytest.raises(CursorError):
            decode_cursor(bad, talks.fingerprint())
    import base64
    import json
    old = base64.urlsafe_b64encode(json.dumps({"v": 0, "t": 1, "id": "x", "f": "y"})
                                   .encode()).decode()
    with pytest.raises(CursorError, match="version 0"):
        decode_cursor(old, talks.fingerprint())
    with pytest.raises(QueryError, match="cursor: "):
        Page.from_query({"cursor": cursor}, Filters())
    with pytest.raises(QueryError, match="limit must be a whole number from 1 to 1000"):
        Page.from_query({"limit": "1001"}, Filters())
    with pytest.raises(QueryError, match="since is after until"):
        Filters.from_query({"since": "2024-02-01", "until": "2024-01-01"})


def test_company_type_ahead_ranks_exact_then_alliance_count_then_name():
    names = CompanyNames()
    for p in (0, 1):
        names.replace(p, [])
    names.put(0, CompanyEntry("nissan", "Nissan", 3))
    names.put(1, CompanyEntry("nissan-chemical", "Nissan Chemical", 9))
    names.put(0, CompanyEntry("nisshin", "Nisshin", 1))
    names.put(1, CompanyEntry("general-motors", "General Motors", 4))
    names.put(1, CompanyEntry("nissan-chemical", "Nissan Chemical", 5))  # updated

    def search(q, limit=10, partitions=(0, 1)):
        return [e.key for e in names.search(partitions, fold(q), limit)]

    assert search("NIS") == ["nissan-chemical", "nissan", "nisshin"]
    assert search("nissan") == ["nissan", "nissan-chemical"]  # the exact name first
    assert search("general-m") == search("General M") == ["general-motors"]
    assert search("nis", limit=1) == ["nissan-chemical"]
    assert search("nis", partitions=[0]) == ["nissan", "nisshin"]
    assert search("x") == []
    # workers' answers merged rank the same way
    merged = company_matches([CompanyEntry("nisshin", "Nisshin", 1),
                              CompanyEntry("nissan", "Nissan", 3)], "nis", 1, [1, 0])
    assert [m.key for m in merged.companies] == ["nissan"] and merged.partitions == [0, 1]


def test_rebuild_plan_reindexes_only_partitions_taken_over():
    assert rebuild_plan(indexed={0, 1}, active={1, 2}) == ({2}, {0})
    assert rebuild_plan(indexed=set(), active={0, 1, 2, 3}) == ({0, 1, 2, 3}, set())


def test_entry_from_table_json_matches_the_state():
    state = VIEW[0]
    assert AllianceEntry.from_json(state.to_bytes()) == AllianceEntry.of(state)
    assert AllianceEntry.of(state).sort_key == sort_key(state)
