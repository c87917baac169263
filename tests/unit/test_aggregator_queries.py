"""Query API logic without Kafka: parameters, filters, answers, routing and the OpenAPI
document."""

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.partitioner import DefaultPartitioner
from openapi_spec_validator import validate

from services.aggregator.index import add_link, links_for
from services.aggregator.openapi import openapi_document
from services.aggregator.queries import (
    AllianceList,
    Filters,
    QueryError,
    Scope,
    alliance_list,
    build_graph,
    company_view,
    history_of,
    parse_scope,
    parse_since,
    parse_stage,
    summarize,
)
from services.aggregator.routing import (
    missing_partitions,
    owners,
    partition_for,
    same_worker,
    workers,
)
from services.aggregator.state import apply
from shared.contracts import AllianceState, Evidence, PartnershipEvent, Stage

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def state_of(parties, *reports):
    """State after (article, stage, day, area) reports."""
    state = None
    for article, stage, day, area in reports:
        event = PartnershipEvent(
            event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
            parties=parties, stage=stage, confidence=0.5 + day / 1000, areas=[area],
            source=f"wire-{article}", published_at=T0 + timedelta(days=day),
            evidence=[Evidence(sentence=f"{article}: {stage}", start=0, end=5)])
        state = apply(state, event)[0] or state
    return state


HN = state_of(["Honda", "Nissan"], ("a1", "rumored", 0, "batteries"),
              ("a2", "talks", 40, "software"))
NRM = state_of(["Mitsubishi", "Nissan", "Renault"], ("a3", "active", 10, "vehicles"))
GF = state_of(["Foxconn", "General Motors"], ("a4", "agreed", 90, "chips"),
              ("a5", "failed", 120, "chips"))


def test_stage_and_since_parsing():
    assert parse_stage("Talks") is Stage.TALKS and parse_stage("") is None
    with pytest.raises(QueryError, match="unknown stage 'merged'"):
        parse_stage("merged")
    assert parse_since("2024-03-01") == datetime(2024, 3, 1, tzinfo=UTC)
    assert parse_since("2024-03-01T08:00:00Z") == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert parse_since("2024-03-01T08:00:00") == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert parse_since("2024-03-01T09:00:00+01:00") == datetime(2024, 3, 1, 8, tzinfo=UTC)
    for bad in ("yesterday", "2024-13-01", "2024-02-30", "1709280000"):
        with pytest.raises(QueryError, match="since must be an ISO date"):
            parse_since(bad)
    assert parse_scope(None) == Scope.ALL and parse_scope("local") == Scope.LOCAL
    with pytest.raises(QueryError, match="scope"):
        parse_scope("everything")


def test_filters_from_query_reject_unknown_names_and_round_trip():
    with pytest.raises(QueryError, match=r"unknown query parameter.*stgae"):
        Filters.from_query({"stgae": "talks"})
    f = Filters.from_query({"company": "General Motors", "stage": "agreed",
                            "since": "2024-02-01"})
    assert f.company == "general-motors"
    assert Filters.from_query(f.params()) == f
    with pytest.raises(QueryError, match="company"):
        Filters.from_query({"company": "???"})


def test_filters_match_company_slug_any_case_stage_and_since():
    states = [HN, NRM, GF]

    def ids(**query):
        return [s.alliance_id for s in states if Filters.from_query(query).matches(s)]

    assert ids(company="nissan") == ["honda+nissan", "mitsubishi+nissan+renault"]
    assert ids(company="general-motors") == ids(company="GENERAL MOTORS") == [
        "foxconn+general-motors"]
    assert ids(stage="talks") == ["honda+nissan"]
    # since compares with the time the current stage was set (talks: day 40, failed: 120)
    assert ids(since=(T0 + timedelta(days=40)).date().isoformat()) == [
        "honda+nissan", "foxconn+general-motors"]
    assert ids(company="nissan", stage="active") == ["mitsubishi+nissan+renault"]


def test_list_is_most_recent_first_and_summaries_drop_observations():
    listed = alliance_list([summarize(s) for s in (NRM, HN, GF)], partitions=[3, 0, 1, 2])
    assert [a.alliance_id for a in listed.alliances] == [
        "foxconn+general-motors", "honda+nissan", "mitsubishi+nissan+renault"]
    assert listed.count == 3 and listed.partitions == [0, 1, 2, 3]
    row = listed.model_dump(mode="json")["alliances"][1]
    assert "observations" not in row
    assert row["areas"] == ["batteries", "software"]
    assert row["sources"] == ["wire-a1", "wire-a2"] and row["article_count"] == 2
    assert AllianceList.model_validate_json(listed.model_dump_json()) == listed


def test_history_has_each_transition_with_article_and_evidence():
    history = history_of(HN)
    assert [(t.previous_stage, t.stage, t.article_id) for t in history.history] == [
        (None, "rumored", "a1"), ("rumored", "talks", "a2")]
    assert history.history[1].evidence[0].sentence == "a2: talks"
    assert [o.article_id for o in history.observations] == ["a1", "a2"]


def test_company_view_lists_partners_by_stage():
    index = None
    for state in (HN, NRM):
        for link in links_for(state, source_offset=1):
            if link.company == "Nissan":
                index = add_link(index, link)
    view = company_view(index)
    assert view.company == "Nissan" and view.alliance_count == 2
    assert view.partners_by_stage == {Stage.TALKS: ["Honda"],
                                      Stage.ACTIVE: ["Mitsubishi", "Renault"]}
    assert [a.partners for a in view.alliances] == [["Honda"], ["Mitsubishi", "Renault"]]


def test_graph_has_a_node_per_company_and_an_edge_per_pair():
    graph = build_graph([summarize(s) for s in (HN, NRM, GF)])
    assert [n.id for n in graph.nodes] == ["foxconn", "general-motors", "honda", "mitsubishi",
                                           "nissan", "renault"]
    nissan = next(n for n in graph.nodes if n.id == "nissan")
    assert nissan.label == "Nissan" and nissan.alliance_count == 2
    assert nissan.stages == {Stage.TALKS: 1, Stage.ACTIVE: 1}
    pairs = [(e.source, e.target, e.alliance_id) for e in graph.edges]
    assert pairs == [
        ("foxconn", "general-motors", "foxconn+general-motors"),
        ("honda", "nissan", "honda+nissan"),
        ("mitsubishi", "nissan", "mitsubishi+nissan+renault"),
        ("mitsubishi", "renault", "mitsubishi+nissan+renault"),
        ("nissan", "renault", "mitsubishi+nissan+renault"),
    ]
    assert build_graph([]).nodes == []


def test_partition_for_is_the_kafka_default_partitioner():
    partitioner = DefaultPartitioner()
    for key in (b"honda+nissan", b"nissan", b"general-motors", b"x" * 100):
        for n in (1, 4, 12):
            assert partition_for(key, n) == partitioner(key, list(range(n)), list(range(n)))


def test_owners_workers_and_gaps_from_assignment_metadata():
    topic = "radar-aggregator-alliances-changelog"
    metadata = {"http://a:6066": {topic: [0, 2], "other": [1]},
                "http://b:6067": {topic: [1]}, "http://c:6068": {"other": [3]}}
    assert owners(metadata, topic) == {0: "http://a:6066", 2: "http://a:6066",
                                       1: "http://b:6067"}
    assert workers(metadata, topic) == ["http://a:6066", "http://b:6067"]
    assert missing_partitions(metadata, topic, 4) == [3]
    assert same_worker("http://127.0.0.1:6066", "http://127.0.0.1:6066/")
    assert not same_worker("http://127.0.0.1:6066", "http://127.0.0.1:6067")


def test_openapi_document_is_valid_and_documents_every_endpoint():
    doc = openapi_document()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/alliances", "/alliances/{alliance_id}",
                                 "/alliances/{alliance_id}/history", "/companies",
                                 "/companies/{name}", "/graph", "/changes/stream",
                                 "/health", "/metrics", "/openapi.json"}

    def params(path):
        return {p["name"] for p in doc["paths"][path]["get"]["parameters"]}

    assert params("/alliances") == {"company", "stage", "since", "until", "as_of", "limit",
                                    "cursor", "scope", "companies"}
    assert params("/graph") == {"company", "depth", "stage", "since", "until", "as_of",
                                "limit", "cursor"}
    assert params("/companies") == {"q", "limit", "scope"}
    assert "next_cursor" in doc["components"]["schemas"]["AllianceList"]["properties"]
    assert "next_cursor" in doc["components"]["schemas"]["Graph"]["properties"]
    for path in ("/alliances", "/graph", "/companies"):
        assert "400" in doc["paths"][path]["get"]["responses"]
    for path in ("/alliances/{alliance_id}", "/companies/{name}"):
        assert "404" in doc["paths"][path]["get"]["responses"]
    summary = doc["components"]["schemas"]["AllianceSummary"]
    assert "observations" not in summary["properties"]
    assert {"history", "first_seen", "sources"} <= set(summary["properties"])


def test_alliance_summary_is_the_state_without_observations():
    from services.aggregator.queries import AllianceSummary

    state_fields = dict(AllianceState.model_fields)
    del state_fields["observations"]
    summary_fields = AllianceSummary.model_fields
    assert list(summary_fields) == list(state_fields)
    for name, field in summary_fields.items():
        assert (field.annotation, field.description) == (
            state_fields[name].annotation, state_fields[name].description), name
