"""Each registered spaCy component on its own."""

import spacy
from spacy.tokens import Span

from services.extractor import components  # noqa: F401  (registers the factories)
from services.extractor.companies import lexicon
from services.extractor.components import Lexicon, Relation, StageTagger, ticker_names
from shared.contracts import Stage


def test_radar_companies_on_a_blank_pipeline():
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    doc = nlp("DETROIT, March 3 - Halvorsen Pharma AG said Halvorsen and <Automobili "
              "Lamborghini SpA> will cooperate.")
    orgs = [e.text for e in doc.ents if e.label_ == "ORG"]
    assert "Halvorsen Pharma AG" in orgs
    assert "Halvorsen" in orgs  # short reference to a name seen in full
    assert "Automobili Lamborghini SpA" in orgs
    assert not any("DETROIT" in o for o in orgs)  # the dateline is not a company


def test_ticker_names_from_headline_and_text():
    names = ticker_names("TEKELEC <TKLC> SETS PACT WITH BRITISH TELECOM",
                         "Chrysler Corp <C> said")
    assert ("TEKELEC",) in names
    assert ("CHRYSLER", "CORP") in names


def test_radar_paragraphs_forces_a_boundary():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("radar_paragraphs")
    doc = nlp("A plant in Smyrna, Tenn.\n\nWhile the talks go on, nothing changes.")
    assert [s.text.strip() for s in doc.sents][-1].startswith("While")


def test_radar_stage_tags_relations_by_their_sentence():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = nlp("Acme and Beta called off talks on a venture. Gamma and Delta may team up.")
    sents = list(doc.sents)
    doc._.relations = [Relation(("Acme", "Beta"), sents[0], "venture"),
                       Relation(("Delta", "Gamma"), sents[1], "team up"),
                       Relation(("Acme", "Zeta"), sents[0], "partner",
                                fixed_stage=Stage.ACTIVE)]
    StageTagger(Lexicon(lexicon()))(doc)
    assert [r.stage for r in doc._.relations] == [Stage.FAILED, Stage.RUMORED, Stage.ACTIVE]
    assert isinstance(sents[0], Span)


def test_radar_relations_links_parties_to_the_cue():
    from services.extractor.pipeline import Extractor

    nlp = Extractor.load().nlp
    doc = nlp("Ford Motor Co and Volkswagen AG formed a joint venture to build vans, while "
              "Toyota Motor Corp reported higher profit.")
    assert [r.parties for r in doc._.relations] == [("Ford", "Volkswagen")]
