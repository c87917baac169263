"""Extraction on texts written for these tests and on the bundled demo set."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.extractor.companies import default_registry
from services.extractor.pipeline import Extractor
from services.ingestor.sources import article_from_mapping
from shared.contracts import ArticleEvent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load()


@pytest.fixture(scope="module")
def lenient() -> Extractor:
    """A lower threshold than the shipped one, for tests of what an event carries."""
    return Extractor.load(threshold=0.3)


def article(text: str, aid: str = "t1") -> ArticleEvent:
    return ArticleEvent(article_id=aid, text=text, published_at=datetime(2024, 1, 1,
                                                                          tzinfo=UTC))


#: Known gap, kept visible: the stage model learns from 1987 wire copy, where talks, failed
#: and ended partnerships are rare (README, extraction section); strict xfail turns into a
#: failure the day a retrained model gets these right, so the marks cannot go stale.
STAGE_GAP = "too few talks/failed/ended partnerships in the labelled wire copy"


def pairs(extractor: Extractor, text: str) -> set[tuple[tuple[str, ...], str]]:
    return {(tuple(e.parties), e.stage.value) for e in extractor.extract(article(text))}


@pytest.mark.parametrize(("text", "parties"), [
    ("Toyota Motor Corp and Mazda Motor Corp are in talks to jointly develop electric "
     "vehicles, the companies said.", ("Mazda", "Toyota")),
    ("Ford Motor Co and Volkswagen AG signed an agreement on Tuesday to build commercial "
     "vans together.", ("Ford", "Volkswagen")),
    ("Intel Corp is considering a chip packaging tie-up with Samsung, people familiar with "
     "the matter said.", ("Intel", "Samsung Electronics")),
    ("Lufthansa and United Airlines called off talks on a transatlantic joint venture.",
     ("Lufthansa", "United Airlines")),
    # Ended partnerships are rare in the labelled wire copy: this set sits near the
    # threshold (0.38 against 0.38, then 0.40 for a LOGIC_VERSION 6 model; found again by
    # 6+m4d527bb060, whose party-name profile features lift it).
    ("Pfizer Inc and BioNTech SE will dissolve their vaccine partnership next year.",
     ("BioNTech", "Pfizer")),
])
def test_parties_of_clear_sentences(extractor, text, parties):
    assert {p for p, _ in pairs(extractor, text)} == {parties}


@pytest.mark.parametrize(("text", "stage"), [
    ("Ford Motor Co and Volkswagen AG signed an agreement on Tuesday to build commercial "
     "vans together.", "agreed"),
    ("Intel Corp is considering a chip packaging tie-up with Samsung, people familiar with "
     "the matter said.", "rumored"),
    pytest.param("Toyota Motor Corp and Mazda Motor Corp are in talks to jointly develop "
                 "electric vehicles, the companies said.", "talks",
                 marks=pytest.mark.xfail(strict=True, reason=STAGE_GAP)),
    pytest.param("Lufthansa and United Airlines called off talks on a transatlantic joint "
                 "venture.", "failed", marks=pytest.mark.xfail(strict=True, reason=STAGE_GAP)),
    pytest.param("Pfizer Inc and BioNTech SE will dissolve their vaccine partnership next "
                 "year.", "ended", marks=pytest.mark.xfail(strict=True, reason=STAGE_GAP)),
])
def test_stage_of_clear_sentences(extractor, text, stage):
    assert {s for _, s in pairs(extractor, text)} == {stage}


@pytest.mark.parametrize("text", [
    "Toyota Motor Corp agreed to acquire a 20 percent stake in Mazda Motor Corp.",
    "Shell placed an order for 12 tankers, while rival BP reported higher profit.",
    "Sony reported record quarterly earnings on Tuesday, according to Reuters.",
])
def test_hard_negatives_give_no_event(extractor, text):
    assert pairs(extractor, text) == set()


def test_outlets_are_not_parties(extractor):
    text = ("Honda Motor Co and Nissan Motor Co agreed to jointly develop batteries, reports "
            "The Wall Street Journal.")
    assert all("Wall Street Journal" not in " ".join(p) for p, _ in pairs(extractor, text))


def test_evidence_offsets_point_into_the_text(extractor):
    text = ("Markets were calm. Honda Motor Co and Nissan Motor Co signed an agreement to "
            "jointly develop electric vehicles.")
    [event] = extractor.extract(article(text))
    ev = event.evidence[0]
    assert text[ev.start:ev.end] == ev.sentence
    assert event.event_id == event.make_event_id("t1", event.parties)
    assert "electric vehicles" in event.areas
    assert event.extractor_version == extractor.version and "+m" in event.extractor_version
    assert extractor.threshold <= event.confidence <= 1


def test_gate_skips_articles_without_cues(extractor):
    assert not extractor.is_candidate("Shares of Acme rose 3 percent on strong sales.")
    assert extractor.extract(article("Shares of Acme rose 3 percent on strong sales.")) == []


def test_bundled_demo_articles(extractor):
    """The demo feed (written for `radar up --demo`, not a quality measure): most of its
    partnerships are found, and its no-event stories stay quiet."""
    from services.extractor.evaluation import Event, score

    articles = [article_from_mapping(json.loads(line), where="demo", default_source="demo")
                for line in (ROOT / "services/cli/samples/demo_articles.jsonl").open()]
    gold = {g["article_id"]: [Event(e["parties"], e["stage"]) for e in g["events"]] for g in
            map(json.loads, (ROOT / "tests/data/demo_gold.jsonl").open())}
    found = {a.article_id: [Event(e.parties, e.stage.value) for e in events]
             for a, events in zip(articles, extractor.extract_many(articles), strict=True)}
    s = score(gold, found)
    # detection F1 0.67 (the previous model 0.80): the party-set model learned from wire
    # copy, where an article rarely reports several partnerships as these stories do.
    assert s.detection[2] >= 0.65 and s.empty_rate == 0.0, s.as_dict()


def test_registry_canonicalizes_aliases_and_suffixes():
    reg = default_registry()
    assert reg.canonicalize("GM", "1987-03-01") == "General Motors"
    assert reg.canonicalize("GM") == "General Motors"
    assert reg.canonicalize("General Motors Corp") == "General Motors"
    assert reg.canonicalize("Nissan Motor Co. Ltd.") == "Nissan"
    assert reg.canonicalize("Chrysler Corp <C>") == "Chrysler"
    assert reg.canonicalize("<Automobili Lamborghini SpA>") == "Automobili Lamborghini"
    assert reg.canonicalize("Acme Widgets Inc.") == "Acme Widgets"
    assert reg.canonicalize("Reuters") is None
    assert reg.brand_owner("Dodge") == "Chrysler"


@pytest.mark.parametrize(("mention", "day", "expected"), [
    ("Exxon Corp", "1987-03-01", "Exxon"),  # ExxonMobil did not exist yet
    ("Exxon Corp", "2005-06-01", "ExxonMobil"),
    ("Daimler-Benz AG", "1987-03-01", "Daimler-Benz"),
    ("Daimler", "2010-01-01", "Daimler"),
    ("Fuji Heavy Industries", "1987-03-01", "Fuji Heavy Industries"),
    ("Fuji Heavy Industries", "2020-01-01", "Subaru"),
    ("British Telecommunications", "1987-03-01", "British Telecom"),
    ("Statoil", "2010-01-01", "Statoil"),
])
def test_names_as_of_the_articles_date(mention, day, expected):
    assert default_registry().canonicalize(mention, day) == expected


def test_brands_belong_to_their_owner_of_the_day():
    reg = default_registry()
    assert reg.brand_owner("Jeep", "1987-03-01") is None  # AMC's until August 1987
    assert reg.brand_owner("Jeep", "1990-01-01") == "Chrysler"
    assert reg.brand_owner("Mercedes-Benz", "1987-03-01") == "Daimler-Benz"


@pytest.mark.parametrize(("text", "cue"), [
    # the stage's own cue, where it fires in the evidence sentence
    ("Markets were calm. Honda Motor Co and Nissan Motor Co signed an agreement to "
     "jointly develop electric vehicles.", "signed"),
    ("Intel Corp is considering a chip packaging tie-up with Samsung, people familiar with "
     "the matter said.", "considering"),
    ("Ford Motor Co and Volkswagen AG signed an agreement on Tuesday to build commercial "
     "vans together.", "signed"),
])
def test_evidence_carries_the_cue_that_fired(lenient, text, cue):
    # What is checked is the evidence, not detection (at a lower threshold than the shipped
    # one, so a set near the threshold is emitted too).
    [event] = lenient.extract(article(text))
    ev = event.evidence[0]
    assert ev.start <= ev.cue_start < ev.cue_end <= ev.end
    assert text[ev.cue_start:ev.cue_end] == ev.cue == cue


def test_cue_offsets_on_the_demo_articles_point_at_cue_words(extractor):
    """Every evidence sentence of the demo feed has a cue (a gate or follow-up cue chose it),
    its offsets lie inside the sentence and the article text there matches a cue of the
    table."""
    articles = [article_from_mapping(json.loads(line), where="demo", default_source="demo")
                for line in (ROOT / "services/cli/samples/demo_articles.jsonl").open()]
    cues = extractor.cues
    checked = 0
    for art, events in zip(articles, extractor.extract_many(articles), strict=True):
        for event in events:
            assert event.article_url == art.url
            for ev in event.evidence:
                assert ev.cue_start is not None, ev.sentence
                words = art.text[ev.cue_start:ev.cue_end]
                assert words == ev.cue and words.strip()
                assert any(c.pattern.fullmatch(words) for c in cues.cues), words
                checked += 1
    assert checked >= 10


def test_cue_span_prefers_the_stage_cue_then_the_earliest_gate_cue(extractor):
    cues = extractor.cues
    sentence = "Acme and Bolt formed a joint venture after long talks."
    assert sentence[slice(*cues.cue_span(sentence, "agreed"))] == "formed"
    # no `ended` cue in the sentence: the first gate cue
    assert sentence[slice(*cues.cue_span(sentence, "ended"))] == "joint venture"
    assert cues.cue_span("Shares rose on Monday.", "talks") is None
