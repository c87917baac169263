"""The company index (pure part): keys, links, ordering by source offset, partners by stage."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.index import (
    CompanyLink,
    add_link,
    company_key,
    index_changed,
    links_for,
    partners_by_stage,
)
from services.aggregator.state import apply
from shared.contracts import Evidence, PartnershipEvent, Stage, alliance_id_for

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def link(company: str, parties: list[str], stage: str, offset: int) -> CompanyLink:
    return CompanyLink(company=company, alliance_id=alliance_id_for(parties),
                       parties=sorted(parties), stage=stage, episode=1,
                       last_changed=T0 + timedelta(days=offset), source_offset=offset)


def event(article: str, parties: list[str], stage: str, day: int) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.6, published_at=T0 + timedelta(days=day),
        evidence=[Evidence(sentence="s", start=0, end=1)])


def test_company_key_is_the_slug_used_in_alliance_ids():
    assert company_key("General Motors") == "general-motors" == company_key("GENERAL motors ")
    assert alliance_id_for(["General Motors", "Honda"]).split("+") == [
        company_key("General Motors"), company_key("Honda")]
    assert company_key("Citroën") == "citroen"
    with pytest.raises(ValueError, match="no letters or digits"):
        company_key("+++")


def test_one_link_per_party_keyed_by_company():
    state, _ = apply(None, event("a1", ["Mitsubishi", "Nissan", "Renault"], "active", 0))
    links = links_for(state, source_offset=7)
    assert [lk.key() for lk in links] == [b"mitsubishi", b"nissan", b"renault"]
    assert {lk.alliance_id for lk in links} == {"mitsubishi+nissan+renault"}
    assert links[1].partners == ["Mitsubishi", "Renault"]
    assert all(lk.source_offset == 7 and lk.stage == "active" for lk in links)


def test_newer_link_replaces_and_older_or_redelivered_link_is_ignored():
    first = add_link(None, link("Honda", ["Honda", "Nissan"], "rumored", 3))
    moved = add_link(first, link("Honda", ["Honda", "Nissan"], "talks", 5))
    assert [a.stage for a in moved.alliances] == ["talks"]
    assert add_link(moved, link("Honda", ["Honda", "Nissan"], "rumored", 3)) is None
    assert add_link(moved, link("Honda", ["Honda", "Nissan"], "talks", 5)) is None


def test_partners_by_stage_groups_every_alliance_in_stage_order():
    index = None
    for lk in [link("Nissan", ["Honda", "Nissan"], "talks", 1),
               link("Nissan", ["Nissan", "Renault"], "active", 2),
               link("Nissan", ["Mitsubishi", "Nissan", "Renault"], "active", 3),
               link("Nissan", ["Foxconn", "Nissan"], "failed", 4)]:
        index = add_link(index, lk) or index
    assert index.key == "nissan" and len(index.alliances) == 4
    assert partners_by_stage(index) == {Stage.TALKS: ["Honda"],
                                        Stage.ACTIVE: ["Mitsubishi", "Renault"],
                                        Stage.FAILED: ["Foxconn"]}


def test_index_follows_stage_and_late_history_that_moves_when_it_was_set():
    state, _ = apply(None, event("a1", ["Honda", "Nissan"], "rumored", 0))
    assert index_changed(None, state)
    talks, _ = apply(state, event("a2", ["Honda", "Nissan"], "talks", 60))
    assert index_changed(state, talks)
    support, _ = apply(talks, event("a3", ["Honda", "Nissan"], "rumored", 70))
    assert not index_changed(talks, support)  # more support, same stage and setter
    # An earlier talks report arriving late moves last_changed back: the index must follow.
    earlier, change = apply(support, event("a4", ["Honda", "Nissan"], "talks", 30))
    assert change is None and earlier.last_changed == T0 + timedelta(days=30)
    assert index_changed(support, earlier)


@settings(max_examples=100, deadline=None)
@given(offsets=st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True),
       data=st.data())
def test_any_delivery_order_keeps_the_link_of_the_newest_record(offsets, data):
    stages = [Stage.RUMORED, Stage.TALKS, Stage.AGREED, Stage.FAILED]
    links = [link("Honda", ["Honda", "Nissan"], stages[o % 4], o) for o in offsets]
    delivered = data.draw(st.permutations(links)) + data.draw(st.lists(st.sampled_from(links)))
    index = None
    for lk in delivered:
        index = add_link(index, lk) or index
    [kept] = index.alliances
    assert kept == max(links, key=lambda lk: lk.source_offset)
