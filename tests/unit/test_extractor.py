"""Extraction on texts written for these tests and on the bundled demo set."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.extractor.companies import CompanyRegistry, default_registry
from services.extractor.pipeline import Extractor
from services.ingestor.sources import article_from_mapping
from shared.contracts import ArticleEvent, Stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load()


def article(text: str, aid: str = "t1") -> ArticleEvent:
    return ArticleEvent(article_id=aid, text=text, published_at=datetime(2024, 1, 1,
                                                                          tzinfo=UTC))


def pairs(extractor: Extractor, text: str) -> set[tuple[tuple[str, ...], str]]:
    return {(tuple(e.parties), e.stage.value) for e in extractor.extract(article(text))}


@pytest.mark.parametrize(("text", "expected"), [
    ("Toyota Motor Corp and Mazda Motor Corp are in talks to jointly develop electric "
     "vehicles, the companies said.", {(("Mazda", "Toyota"), "talks")}),
    ("Ford Motor Co and Volkswagen AG signed an agreement on Tuesday to build commercial "
     "vans together.", {(("Ford", "Volkswagen"), "agreed")}),
    ("Intel Corp is considering a chip packaging tie-up with Samsung, people familiar with "
     "the matter said.", {(("Intel", "Samsung Electronics"), "rumored")}),
    ("Lufthansa and United Airlines called off talks on a transatlantic joint venture.",
     {(("Lufthansa", "United Airlines"), "failed")}),
    ("Pfizer Inc and BioNTech SE will dissolve their vaccine partnership next year.",
     {(("BioNTech", "Pfizer"), "ended")}),
])
def test_stage_of_clear_sentences(extractor, text, expected):
    assert pairs(extractor, text) == expected


@pytest.mark.parametrize("text", [
    "Toyota Motor Corp agreed to acquire a 20 percent stake in Mazda Motor Corp.",
    "Shell placed an order for 12 tankers, while rival BP reported higher profit.",
    "Sony reported record quarterly earnings on Tuesday, according to Reuters.",
])
def test_hard_negatives_give_no_event(extractor, text):
    assert pairs(extractor, text) == set()


def test_possessive_partner_is_an_active_pair_and_outlets_are_not_parties(extractor):
    text = ("After months of discussions, Nissan and its French partner, Renault SA, failed "
            "to reach an agreement on a three-way alliance with General Motors Corp, "
            "reports The Wall Street Journal.")
    assert pairs(extractor, text) == {
        (("Nissan", "Renault"), "active"),
        (("General Motors", "Nissan", "Renault"), "failed"),
    }


def test_evidence_offsets_point_into_the_text(extractor):
    text = "Markets were calm. Honda Motor Co and Nissan Motor Co are in talks on EVs."
    [event] = extractor.extract(article(text))
    ev = event.evidence[0]
    assert text[ev.start:ev.end] == ev.sentence
    assert event.event_id == event.make_event_id("t1", event.parties)
    assert "electric vehicles" in event.areas


def test_gate_skips_articles_without_cues(extractor):
    assert not extractor.is_candidate("Shares of Acme rose 3 percent on strong sales.")
    assert extractor.extract(article("Shares of Acme rose 3 percent on strong sales.")) == []


def names_match(gold: str, predicted: str) -> bool:
    """ANNOTATION.md matching: equal, or one name's words all in the other's."""
    registry = CompanyRegistry()
    g = set(gold.split("|")[0].lower().split())
    p = set(registry.canonicalize(predicted).lower().split())
    return g <= p or p <= g


def test_bundled_demo_articles_match_their_gold(extractor):
    articles = [article_from_mapping(json.loads(line), where="demo", default_source="demo")
                for line in (ROOT / "services/cli/samples/demo_articles.jsonl").open()]
    gold = {g["article_id"]: g["events"] for g in
            map(json.loads, (ROOT / "tests/data/demo_gold.jsonl").open())}
    for art, events in zip(articles, extractor.extract_many(articles), strict=True):
        expected = gold[art.article_id]
        assert len(events) == len(expected), (art.article_id, events)
        for want in expected:
            hits = [e for e in events if len(e.parties) == len(want["parties"]) and all(
                any(names_match(g, p) for p in e.parties) for g in want["parties"])]
            assert hits, (art.article_id, want, [e.parties for e in events])
            assert hits[0].stage == Stage(want["stage"]), (art.article_id, want)


def test_registry_canonicalizes_aliases_and_suffixes():
    reg = default_registry()
    assert reg.canonicalize("GM") == "General Motors"
    assert reg.canonicalize("General Motors Corp") == "General Motors"
    assert reg.canonicalize("Nissan Motor Co. Ltd.") == "Nissan"
    assert reg.canonicalize("Chrysler Corp <C>") == "Chrysler"
    assert reg.canonicalize("<Automobili Lamborghini SpA>") == "Automobili Lamborghini"
    assert reg.canonicalize("Acme Widgets Inc.") == "Acme Widgets"
    assert reg.canonicalize("Reuters") is None
    assert reg.brand_owner("Dodge") == "Chrysler"
