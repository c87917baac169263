"""The learned article gate in front of the sentence split and the parse: the shipped
artefact decides on real wire text of the labelled corpus's training part and on modern
partnership stories, and its decision is the one `Extractor.prepare` acts on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from services.extractor.gate import (
    FORMAT,
    ArticleGate,
    default_gate_path,
    features,
    load_gate,
)
from services.extractor.pipeline import Extractor
from services.extractor.text import normalise
from services.extractor.training.corpus import Labelled, load
from shared.contracts import ArticleEvent

#: Training-part articles (never the held-out slice): partnerships the wire reported ...
PARTNERSHIPS = ("reuters-5397", "reuters-753", "reuters-4054")
#: ... and news that names a cue ("agreement", "market", "deal") but no partnership.
NOT_PARTNERSHIPS = ("reuters-9888", "reuters-12923", "reuters-5442")

#: Modern partnership stories, in words the 1987 wire never used.
MODERN = (
    ("Toyota and Panasonic form EV battery venture",
     "Toyota Motor Corp and Panasonic Holdings said on Monday they would set up a joint "
     "venture to develop and make lithium-ion batteries for electric vehicles, with "
     "Toyota owning 51 percent."),
    ("Nissan, Honda in talks on strategic partnership",
     "Nissan Motor and Honda Motor are in talks to deepen their strategic partnership on "
     "software-defined vehicles and EV components, the companies said."),
)


@pytest.fixture(scope="module")
def corpus() -> dict[str, Labelled]:
    return {i.article.article_id: i for i in load()}


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load()


def gate_decides(gate: ArticleGate, item: Labelled) -> bool:
    return gate.passes(item.article.title, normalise(item.article.text))


def test_examples_come_from_the_training_part(corpus):
    for article_id in PARTNERSHIPS + NOT_PARTNERSHIPS:
        assert not corpus[article_id].heldout
    assert all(corpus[a].events for a in PARTNERSHIPS)
    assert not any(corpus[a].events for a in NOT_PARTNERSHIPS)


def test_the_gate_passes_partnerships_and_refuses_other_news_that_names_a_cue(corpus,
                                                                              extractor):
    gate = load_gate()
    for article_id in PARTNERSHIPS:
        assert gate_decides(gate, corpus[article_id]), article_id
    for article_id in NOT_PARTNERSHIPS:
        item = corpus[article_id]
        # the cue table alone would parse it: the learned gate is what refuses it
        assert extractor.cues.is_gate(normalise(item.article.text)), article_id
        assert not gate_decides(gate, item), article_id


def test_modern_partnership_stories_pass(extractor):
    gate = load_gate()
    for title, text in MODERN:
        assert gate.passes(title, text), title
        assert extractor.is_candidate(text, title)


def test_prepare_acts_on_the_gates_decision(corpus, extractor):
    ungated = Extractor(extractor.nlp, gate=None)
    for article_id in NOT_PARTNERSHIPS:
        article = corpus[article_id].article
        assert extractor.prepare(article) is None
        assert not extractor.is_candidate(article.text, article.title)
        # without the learned gate the cue table lets it through to the sentence split
        assert ungated.prepare(article) is not None
        assert extractor.extract_outcomes([article]) == [(False, [])]
    for article_id in PARTNERSHIPS:
        article = corpus[article_id].article
        assert extractor.prepare(article) is not None
        assert extractor.is_candidate(article.text, article.title)


def test_the_threshold_decides(corpus):
    gate = load_gate()
    item = corpus[PARTNERSHIPS[0]]
    p = gate.probability(item.article.title, normalise(item.article.text))
    stricter = ArticleGate("test", gate.weights, gate.bias, threshold=min(1.0, p + 1e-6))
    assert gate_decides(gate, item) and not gate_decides(stricter, item)


def test_the_gate_is_loaded_once_and_named_in_the_extractor_version(extractor):
    assert load_gate() is load_gate() is extractor.gate
    assert extractor.version.endswith("+" + extractor.gate.version)
    assert extractor.gate.version.startswith("g")
    event = ArticleEvent(article_id="gate-version", title=MODERN[0][0], text=MODERN[0][1],
                         published_at="2024-05-01T00:00:00Z", source="test")
    for found in extractor.extract(event):
        assert found.extractor_version == extractor.version


def test_features_are_words_bigrams_and_headline_words():
    feats = features("Acme, Brill form venture", "Acme Corp and Brill AG formed a venture "
                     "worth 12.5 mln dlrs.")
    assert {"acme", "formed", "a venture", "0", "0 mln",
            "t:venture", "t:brill"} <= feats
    assert not any(f[0].isdigit() and f != "0" and not f.startswith("0 ") for f in feats)


def test_the_artefact_round_trips_and_a_foreign_file_is_refused(tmp_path: Path):
    gate = ArticleGate.load(default_gate_path())
    out = tmp_path / "gate.json.gz"
    gate.save(out)
    assert out.read_bytes() == default_gate_path().read_bytes()
    assert ArticleGate.load(out) == gate
    data = json.loads(gzip.decompress(out.read_bytes()))
    assert data["format"] == FORMAT
    data["format"] = "something-else"
    out.write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(ValueError, match="not an article gate"):
        ArticleGate.load(out)


def test_the_gate_can_be_turned_off_by_setting(corpus, extractor, monkeypatch):
    """RADAR_EXTRACTOR_ARTICLE_GATE=off: the extractor service's pipeline has no learned
    gate (for a partnership model trained on other news), so cue-passing articles the
    shipped gate refuses reach the sentence split, and the version names no gate."""
    from services.extractor.workers import PipelineSpec
    from shared.settings import ExtractorSettings
    from shared.settings import load as load_settings

    monkeypatch.setenv("RADAR_EXTRACTOR_ARTICLE_GATE", "off")
    settings = load_settings(ExtractorSettings)
    off = PipelineSpec(settings.model, gate_path=settings.article_gate).load()
    assert off.gate is None
    assert extractor.version.startswith(off.version + "+g")
    article = corpus[NOT_PARTNERSHIPS[0]].article
    assert extractor.prepare(article) is None and off.prepare(article) is not None
