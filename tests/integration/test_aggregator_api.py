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
from tests.helpers import TopicReader, produce, valid, wait_until

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
    await produce(stack.bootstrap, TopicSettings().partnerships,
                  [(e.key(), e.to_bytes()) for e in EVENTS])
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
        resp = httpx.get(f"{api}/alliances", params=params)
        assert resp.status_code == 200, resp.text
        listed = AllianceList.model_validate_json(resp.content)
        assert listed.partitions == [0, 1, 2, 3] and listed.count == len(listed.alliances)
        return [a.alliance_id for a in listed.alliances if a.alliance_id.startswith("apitest")]

    assert ids(company="Apitest Alpha") == [AB, ADG]  # most recently changed first
    assert ids(company="apitest-beta", stage="failed") == [BE]
    assert ids(company="APITEST ALPHA", stage="Talks") == []
    assert ids(since="2024-01-20") == [BE, AB]
    assert ids(since="2024-01-20T00:00:01Z") == [BE]
    for params, message in [({"since": "last week"}, "since must be an ISO date"),
                            ({"stage": "merged"}, "unknown stage"),
                            ({"compnay": "x"}, "unknown query parameter"),
                            ({"scope": "galaxy"}, "scope")]:
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
    for path in served.json()["paths"]:
        resp = httpx.get(api + path.format(**examples))
        assert resp.status_code == 200, (path, resp.text[:200])
