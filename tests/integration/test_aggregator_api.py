"""The aggregator on the embedded broker: change feed, state feed, company index and every
query endpoint, fed with partnership events produced straight to its input topic."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.aggregator.index import CompanyLink
from services.aggregator.openapi import openapi_document
from services.aggregator.queries import (
    AllianceHistory,
    AllianceList,
    AllianceSummary,
    CompanyView,
    Graph,
)
from services.aggregator.routing import partition_for
from services.cli.stack import Stack
from shared.contracts import AllianceChange, AllianceState, Evidence, PartnershipEvent
from shared.settings import TopicSettings
from tests.helpers import TopicReader, publish_partnerships, valid, wait_until

AB, ADG, BE = "apitest-alpha+apitest-beta", "apitest-alpha+apitest-delta+apitest-gamma", \
    "apitest-beta+apitest-epsilon"


def event(article: str, parties: list[str], stage: str, day: int) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.5 + day / 100, areas=[f"area-{stage}"],
        source="API Wire", published_at=datetime(2024, 1, day, tzinfo=UTC),
        evidence=[Evidence(sentence=f"{' and '.join(parties)} {stage}", start=0, end=9)])


ALPHA_BETA = ["Apitest Alpha", "Apitest Beta"]
EVENTS = [
    event("api-1", ALPHA_BETA, "rumored", 1),
    event("api-2", ALPHA_BETA, "talks", 5),
    event("api-2", ALPHA_BETA, "talks", 5),  # redelivered: changes nothing
    event("api-3", ALPHA_BETA, "rumored", 8),  # weaker, newer: support only
    event("api-4", ["Apitest Alpha", "Apitest Gamma", "Apitest Delta"], "active", 10),
    event("api-5", ["Apitest Beta", "Apitest Epsilon"], "talks", 2),
    event("api-6", ALPHA_BETA, "agreed", 20),
    event("api-7", ["Apitest Beta", "Apitest Epsilon"], "failed", 25),
]


@pytest.fixture(scope="module")
async def api(stack: Stack) -> str:
    await publish_partnerships(stack.bootstrap, EVENTS)
    base = stack.services["aggregator"].base_url

    def settled() -> bool:
        rows = httpx.get(f"{base}/alliances", params={"company": "apitest beta"}).json()
        stages = {r["alliance_id"]: r["stage"] for r in rows["alliances"]}
        return stages == {AB: "agreed", BE: "failed"}

    wait_until(settled, 60, message="the test alliances in the view")
    return base


def ours(records: list, model: type) -> list:
    return [m for m in valid(records, model) if m.alliance_id.startswith("apitest")]


async def test_changes_exactly_when_the_stage_changes_and_state_after_each(
        api: str, stack: Stack) -> None:
    async with TopicReader(stack.bootstrap, TopicSettings().changes) as reader:
        await reader.wait_for(lambda rs: len(ours(rs, AllianceChange)) >= 5, 60,
                              message="five changes")
        changes = ours(reader.records, AllianceChange)
    by_alliance = {}
    for change in changes:
        by_alliance.setdefault(change.alliance_id, []).append(
            (change.previous_stage, change.stage, change.article_id))
    assert by_alliance == {
        AB: [(None, "rumored", "api-1"), ("rumored", "talks", "api-2"),
             ("talks", "agreed", "api-6")],
        ADG: [(None, "active", "api-4")],
        BE: [(None, "talks", "api-5"), ("talks", "failed", "api-7")],
    }
    async with TopicReader(stack.bootstrap, TopicSettings().state) as reader:
        await reader.wait_for(lambda rs: len(ours(rs, AllianceState)) >= 6, 60,
                              message="a state per change")
        states = [s for s in ours(reader.records, AllianceState) if s.alliance_id == AB]
    assert [(s.stage, s.article_count) for s in states] == [("rumored", 1), ("talks", 2),
                                                             ("agreed", 4)]
    live = httpx.get(f"{api}/alliances/{AB}").json()
    assert states[-1].model_dump(mode="json", exclude={"observations"}) == live


def test_list_filters_and_bad_parameters(api: str) -> None:
    def ids(**params) -> list[str]:
        resp = httpx.get(f"{api}/alliances", params={"limit": 1000} | params)
        assert resp.status_code == 200, resp.text
        listed = AllianceList.model_validate_json(resp.content)
        assert listed.partitions == [0, 1, 2, 3] and listed.count == len(listed.alliances)
        return [a.alliance_id for a in listed.alliances if a.alliance_id.startswith("apitest")]

    assert ids(company="Apitest Alpha") == [AB, ADG]  # most recently changed first
    assert ids(company="apitest-beta", stage="failed") == [BE]
    assert ids(company="APITEST ALPHA", stage="Talks") == []
    assert ids(since="2024-01-20") == [BE, AB]
    assert ids(since="2024-01-20T00:00:01Z") == [BE]
    assert ids(company="Apitest Beta", until="2024-01-20") == [AB]
    assert ids(company="Apitest Alpha", since="2024-01-10", until="2024-01-10") == [ADG]
    for params, message in [({"since": "last week"}, "since must be an ISO date"),
                            ({"stage": "merged"}, "unknown stage"),
                            ({"compnay": "x"}, "unknown query parameter"),
                            ({"scope": "galaxy"}, "scope"),
                            ({"until": "soon"}, "until must be an ISO date"),
                            ({"limit": "0"}, "limit must be"), ({"limit": "x"}, "limit must"),
                            ({"cursor": "bm9wZQ"}, "cursor")]:
        resp = httpx.get(f"{api}/alliances", params=params)
        assert resp.status_code == 400 and message in resp.json()["error"], params
        assert httpx.get(f"{api}/graph", params=params).status_code == 400


def test_one_alliance_and_its_history(api: str, stack: Stack) -> None:
    resp = httpx.get(f"{api}/alliances/{AB}")
    assert resp.status_code == 200
    assert resp.headers["X-Radar-Worker"] == stack.services["aggregator"].base_url
    one = AllianceSummary.model_validate_json(resp.content)
    assert (one.stage, one.article_count, one.sources) == ("agreed", 4, ["API Wire"])
    assert one.areas == ["area-agreed", "area-rumored", "area-talks"]
    assert one.first_seen == datetime(2024, 1, 1, tzinfo=UTC)
    assert one.last_changed == datetime(2024, 1, 20, tzinfo=UTC)
    history = AllianceHistory.model_validate_json(
        httpx.get(f"{api}/alliances/{AB}/history").content)
    assert [(t.stage, t.article_id) for t in history.history] == [
        ("rumored", "api-1"), ("talks", "api-2"), ("agreed", "api-6")]
    assert history.history[2].evidence[0].sentence == "Apitest Alpha and Apitest Beta agreed"
    assert [o.article_id for o in history.observations] == ["api-1", "api-2", "api-3", "api-6"]
    for path in ("/alliances/apitest-nobody+apitest-x", "/alliances/apitest-x+y/history"):
        missing = httpx.get(api + path)
        assert missing.status_code == 404 and "no alliance with id" in missing.json()["error"]
    assert httpx.get(f"{api}/alliances/{AB}", params={"x": "1"}).status_code == 400


def test_company_index_partners_by_stage(api: str, stack: Stack) -> None:
    def alpha() -> CompanyView | None:
        resp = httpx.get(f"{api}/companies/Apitest Alpha")
        view = CompanyView.model_validate_json(resp.content) if resp.status_code == 200 \
            else None
        return view if view and view.partners_by_stage.get("agreed") else None

    view = wait_until(alpha, 30, message="Apitest Alpha in the company index")
    assert view.key == "apitest-alpha" and view.alliance_count == 2
    assert view.partners_by_stage == {"agreed": ["Apitest Beta"],
                                      "active": ["Apitest Delta", "Apitest Gamma"]}
    assert httpx.get(f"{api}/companies/apitest-alpha").json() == view.model_dump(mode="json")
    missing = httpx.get(f"{api}/companies/Apitest Nobody")
    assert missing.status_code == 404 and "Apitest Nobody" in missing.json()["error"]
    assert httpx.get(f"{api}/companies/%2B%2B").status_code == 400


async def test_company_index_topic_is_keyed_and_partitioned_by_company(
        api: str, stack: Stack) -> None:
    partitions = TopicSettings().partitions
    async with TopicReader(stack.bootstrap, "radar-aggregator-company-index") as reader:
        await reader.wait_for(lambda rs: sum(r.key == b"apitest-alpha" for r in rs) >= 4, 30,
                              message="links of Apitest Alpha")
    links = [(r, CompanyLink.from_bytes(r.value)) for r in reader.records
             if r.key.startswith(b"apitest-")]
    assert {r.key for r, _ in links} == {b"apitest-alpha", b"apitest-beta", b"apitest-gamma",
                                         b"apitest-delta", b"apitest-epsilon"}
    for record, link in links:
        assert record.key == link.key()
        assert record.partition == partition_for(record.key, partitions)


def test_graph_nodes_and_edges(api: str) -> None:
    graph = Graph.model_validate_json(httpx.get(f"{api}/graph",
                                                params={"company": "apitest-alpha"}).content)
    assert [n.id for n in graph.nodes] == ["apitest-alpha", "apitest-beta", "apitest-delta",
                                           "apitest-gamma"]
    assert sorted((e.source, e.target, e.stage) for e in graph.edges) == [
        ("apitest-alpha", "apitest-beta", "agreed"),
        ("apitest-alpha", "apitest-delta", "active"),
        ("apitest-alpha", "apitest-gamma", "active"),
        ("apitest-delta", "apitest-gamma", "active")]


def test_openapi_document_is_served_and_every_documented_get_answers(api: str) -> None:
    served = httpx.get(f"{api}/openapi.json")
    assert served.status_code == 200 and served.json() == openapi_document()
    examples = {"alliance_id": AB, "name": "Apitest Beta"}
    for path, item in served.json()["paths"].items():
        if "text/event-stream" in item["get"]["responses"]["200"]["content"]:
            continue  # endless: tests/integration/test_change_stream.py
        required = {p["name"]: p["example"] for p in item["get"].get("parameters", [])
                    if p.get("required") and p["in"] == "query"}
        resp = httpx.get(api + path.format(**examples), params=required)
        assert resp.status_code == 200, (path, resp.text[:200])


def page_all(api: str, path: str, params: dict) -> list[dict]:
    """Every page of `path`, following next_cursor."""
    pages, cursor = [], None
    while True:
        resp = httpx.get(f"{api}{path}", params=params | ({"cursor": cursor} if cursor else {}))
        assert resp.status_code == 200, resp.text
        pages.append(resp.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 500


def test_paging_lists_the_whole_view_once_in_order(api: str) -> None:
    whole = httpx.get(f"{api}/alliances", params={"limit": 1000}).json()
    assert whole["next_cursor"] is None
    pages = page_all(api, "/alliances", {"limit": 2})
    assert all(p["count"] == 2 for p in pages[:-1]) and len(pages) >= 2
    assert [a for p in pages for a in p["alliances"]] == whole["alliances"]
    beta = page_all(api, "/alliances", {"limit": 1, "company": "Apitest Beta"})
    assert [[a["alliance_id"] for a in p["alliances"]] for p in beta] == [[BE], [AB]]
    # a cursor belongs to its filters
    foreign = httpx.get(f"{api}/alliances", params={"cursor": pages[0]["next_cursor"],
                                                     "company": "Apitest Beta"})
    assert foreign.status_code == 400 and "other filters" in foreign.json()["error"]
    # /graph without company pages the same list
    graphs = page_all(api, "/graph", {"limit": 2})
    assert [sorted({e["alliance_id"] for e in g["edges"]}) for g in graphs] == [
        sorted(a["alliance_id"] for a in p["alliances"]) for p in pages]


def test_graph_walks_from_a_company_to_depth_within_limit(api: str) -> None:
    def graph(**params) -> dict:
        resp = httpx.get(f"{api}/graph", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    two = graph(company="apitest-alpha", depth=2)
    assert sorted({e["alliance_id"] for e in two["edges"]}) == [AB, ADG, BE]
    assert "apitest-epsilon" in {n["id"] for n in two["nodes"]} and not two["truncated"]
    assert {e["alliance_id"] for e in graph(company="apitest-epsilon", depth=2)["edges"]} == \
        {BE, AB}
    one = graph(company="apitest-alpha", depth=3, limit=1)
    assert [e["alliance_id"] for e in one["edges"]] == [AB] and one["truncated"]
    staged = graph(company="apitest-alpha", depth=2, stage="active")
    assert {e["alliance_id"] for e in staged["edges"]} == {ADG}
    for params, message in [({"company": "apitest-alpha", "depth": 4}, "depth must be"),
                            ({"depth": 2}, "give company"),
                            ({"company": "apitest-alpha", "cursor": "x"}, "cursor pages")]:
        resp = httpx.get(f"{api}/graph", params=params)
        assert resp.status_code == 400 and message in resp.json()["error"], params


def test_company_type_ahead(api: str) -> None:
    def names(**params) -> list[str]:
        resp = httpx.get(f"{api}/companies", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["partitions"] == [0, 1, 2, 3]
        return [(c["name"], c["key"], c["alliance_count"]) for c in body["companies"]]

    def settled() -> list | None:
        found = names(q="apitest")
        return found if len(found) == 5 and found[0][2] == 2 else None

    found = wait_until(settled, 30, message="the test companies in the type-ahead")
    assert found == [("Apitest Alpha", "apitest-alpha", 2), ("Apitest Beta", "apitest-beta", 2),
                     ("Apitest Delta", "apitest-delta", 1),
                     ("Apitest Epsilon", "apitest-epsilon", 1),
                     ("Apitest Gamma", "apitest-gamma", 1)]
    assert names(q="APITEST E") == names(q="apitest-e") == [found[3]]
    assert names(q="apitest", limit=2) == found[:2]
    assert names(q="apitest-zzz") == []
    for params in ({}, {"q": " "}, {"q": "a", "limit": 101}, {"q": "a", "x": 1}):
        assert httpx.get(f"{api}/companies", params=params).status_code == 400, params
