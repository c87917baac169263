"""Each registered spaCy component on its own, on `spacy.blank("en")` with hand-made parses
where a component needs one: no model download, no trained weights."""

import numpy as np
import spacy
from spacy.tokens import Doc

from services.extractor import components  # noqa: F401  (registers the factories)
from services.extractor.components.candidates import name_clusters, same_company
from services.extractor.components.companies import bracketed_names, ticker_names
from services.extractor.components.extensions import ArticleContext, Segment
from services.extractor.components.partnerships import PooledCandidate, decide
from services.extractor.cues import default_cues
from services.extractor.model import PartnershipModel
from services.extractor.text import normalise

NAMES = default_cues().names


def test_radar_companies_on_a_blank_pipeline():
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    doc = nlp("DETROIT, March 3 - Halvorsen Pharma AG said Halvorsen and <Automobili "
              "Lamborghini SpA> will cooperate.")
    found = {s.text: s._.company for s in doc.spans["companies"]}
    assert found["Halvorsen Pharma AG"] == "Halvorsen Pharma"
    assert found["Halvorsen"] == "Halvorsen Pharma"  # a short reference to the full name
    assert found["Automobili Lamborghini SpA"] == "Automobili Lamborghini"
    assert not any("DETROIT" in t for t in found)  # the dateline is not a company
    assert all(s._.company_known for s in doc.spans["companies"])


def test_radar_companies_drops_places_and_descriptions():
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    doc = nlp("Genzyme Corp and Rutherford Holdings Co, N.J.-based, agreed. Acme Co said so.")
    names = [s._.company for s in doc.spans["companies"]]
    assert "Genzyme" in names and "Acme" in names
    assert not any(n.startswith("Rutherford") for n in names)


def test_names_resolve_as_of_the_article_date():
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    for day, expected in (("1987-03-01", "Exxon"), ("2005-06-01", "ExxonMobil")):
        doc = nlp.make_doc("Exxon Corp and Shell Oil Co formed a venture.")
        doc._.article = ArticleContext(published=day, segments=(Segment(0, 0, len(doc.text)),))
        doc = nlp.get_pipe("radar_companies")(doc)
        assert doc.spans["companies"][0]._.company == expected


def test_ticker_names_from_headline_and_text():
    names = ticker_names(("TEKELEC <TKLC> SETS PACT WITH BRITISH TELECOM",
                          "Chrysler Corp <C> said"), NAMES)
    assert ("TEKELEC",) in names
    assert ("CHRYSLER", "CORP") in names


def test_bracketed_wire_names_are_companies_though_the_brackets_are_gone():
    original = ("Archive Corp <ACHV> said <Microamerica>, a reseller, will distribute its "
                "drive. Microamerica will carry both models, <SIEG.F> said.")
    assert bracketed_names([original]) == {"Microamerica"}  # tickers are not names
    assert bracketed_names(["with <Kamine Engineering <Inc> and <AB> ."]) == \
        {"Kamine Engineering"}
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    doc = nlp.make_doc(normalise(original))
    doc._.article = ArticleContext(published="1987-03-01",
                                   segments=(Segment(0, 0, len(doc.text)),),
                                   bracketed=bracketed_names([original]))
    doc = nlp.get_pipe("radar_companies")(doc)
    found = [(s.text, s._.company_kind) for s in doc.spans["companies"]]
    assert found.count(("Microamerica", "designator")) == 2  # bracketed once, then plain


def test_radar_paragraphs_forces_a_boundary():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("radar_paragraphs")
    doc = nlp("A plant in Smyrna, Tenn.\n\nWhile the talks go on, nothing changes.")
    assert [s.text.strip() for s in doc.sents][-1].startswith("While")


def parsed(words, heads, deps, pos, companies):
    """A Doc with a hand-made parse and the given company spans (start, end, name)."""
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=words, heads=heads, deps=deps, pos=pos)
    spans = []
    for start, end, name in companies:
        span = doc[start:end]
        span._.company, span._.company_known, span._.company_kind = name, True, "designator"
        spans.append(span)
    doc.spans["companies"] = spans
    return doc


def test_radar_candidates_proposes_pairs_and_groups_with_features():
    #            0       1     2       3      4      5       6        7      8   9   10   11
    words = ["Acme", ",", "Beta", "and", "Gamma", "formed", "a", "venture", "with", "Delta",
             "Co", "."]
    heads = [5, 0, 0, 2, 2, 5, 7, 5, 7, 10, 8, 5]
    deps = ["nsubj", "punct", "conj", "cc", "conj", "ROOT", "det", "dobj", "prep", "compound",
            "pobj", "punct"]
    pos = ["PROPN", "PUNCT", "PROPN", "CCONJ", "PROPN", "VERB", "DET", "NOUN", "ADP", "PROPN",
           "PROPN", "PUNCT"]
    doc = parsed(words, heads, deps, pos,
                 [(0, 1, "Acme"), (2, 3, "Beta"), (4, 5, "Gamma"), (9, 11, "Delta")])
    spacy.blank("en").add_pipe("radar_candidates")(doc)  # type: ignore[operator]
    by_set = {c.parties: c.features for c in doc._.candidates}
    assert ("Acme", "Beta") in by_set and ("Acme", "Delta") in by_set
    assert ("Acme", "Beta", "Gamma") in by_set  # the coordinated run
    assert ("Acme", "Beta", "Delta", "Gamma") in by_set  # the whole sentence
    assert "third_coord" in by_set[("Acme", "Beta")]  # a pair inside a coordinated group
    assert "c:joint_venture" in by_set[("Acme", "Delta")]
    assert any(f.startswith("pp:") for f in by_set[("Acme", "Delta")])  # the linking path
    assert "ng:with B" in by_set[("Acme", "Delta")]


def test_radar_candidates_resolves_the_two_companies():
    words = ["Acme", "Co", "met", "Beta", "Inc", ".", "The", "two", "companies", "formed",
             "a", "venture", "."]
    heads = [1, 2, 2, 4, 2, 2, 8, 8, 9, 9, 11, 9, 9]
    deps = ["compound", "nsubj", "ROOT", "compound", "dobj", "punct", "det", "nummod",
            "nsubj", "ROOT", "det", "dobj", "punct"]
    pos = ["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "PUNCT", "DET", "NUM", "NOUN", "VERB",
           "DET", "NOUN", "PUNCT"]
    doc = parsed(words, heads, deps, pos, [(0, 2, "Acme"), (3, 5, "Beta")])
    spacy.blank("en").add_pipe("radar_candidates")(doc)  # type: ignore[operator]
    second = [c for c in doc._.candidates if c.sentence.start == 6]
    assert [c.parties for c in second] == [("Acme", "Beta")]
    assert second[0].reference and "k:pair_reference" in second[0].features


def test_the_two_companies_and_a_third_named_after_them():
    # "Acme Co met Beta Inc. The two companies will form ventures with Gamma Co."
    words = ["Acme", "Co", "met", "Beta", "Inc", ".", "The", "two", "companies", "will", "form",
             "ventures", "with", "Gamma", "Co", "."]
    heads = [1, 2, 2, 4, 2, 2, 8, 8, 10, 10, 10, 10, 10, 14, 12, 10]
    deps = ["compound", "nsubj", "ROOT", "compound", "dobj", "punct", "det", "nummod",
            "nsubj", "aux", "ROOT", "dobj", "prep", "compound", "pobj", "punct"]
    pos = ["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "PUNCT", "DET", "NUM", "NOUN", "AUX",
           "VERB", "NOUN", "ADP", "PROPN", "PROPN", "PUNCT"]
    doc = parsed(words, heads, deps, pos, [(0, 2, "Acme"), (3, 5, "Beta"), (13, 15, "Gamma")])
    spacy.blank("en").add_pipe("radar_candidates")(doc)  # type: ignore[operator]
    second = {c.parties for c in doc._.candidates if c.sentence.start == 6}
    # the reference stands for the two companies named before, not for Gamma
    assert ("Acme", "Beta", "Gamma") in second
    assert ("Acme", "Gamma") in second and ("Beta", "Gamma") in second


def test_radar_companies_finds_1987_wire_names():
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    doc = nlp("Mitsubishi Heavy Industries Ltd and C. Itoh and Co Ltd will sell. Spain's Minas "
              "de Almaden y Arrayanes S.A. agreed with Algerian producer ENOF. Cheung Kong "
              "(Holdings) Ltd joined the French group Jeumont-Schneider. Reuters Holdings Plc "
              "and Genetics Institute Inc and Union Carbide Corp agreed, the Soviet Union said.")
    found = {s._.company: s._.company_kind for s in doc.spans["companies"]}
    assert found["C. Itoh"] == "designator"
    assert found["Minas de Almaden y Arrayanes"] == "designator"
    assert found["Cheung Kong"] == "designator"
    assert found["ENOF"] == found["Jeumont-Schneider"] == "described"
    assert {"Reuters", "Genetics Institute", "Union Carbide"} <= set(found)
    assert not any("Soviet" in name for name in found)


def test_same_company_and_name_clusters():
    assert same_company("BP", "BP North America")
    assert same_company("Varitronics", "Varitronic Systems")
    assert same_company("SAT", "Societe Anonyme de Telecommunications")
    assert same_company("ATT", "AT&T")
    assert not same_company("Motors", "General Motors")
    clusters = name_clusters(["General", "General Motors", "General Electric", "BP",
                              "BP North America"], preferred={"BP"})
    assert clusters["General Motors"] != clusters["General Electric"]  # "General" is ambiguous
    assert clusters["BP North America"] == "BP"


def tiny_model(weights: dict[str, float], bias: float = -1.0) -> PartnershipModel:
    names = sorted(weights)
    return PartnershipModel(
        version="test", vocabulary={n: i for i, n in enumerate(names)},
        detect_weights=np.array([weights[n] for n in names]), detect_bias=bias,
        calibration_x=np.array([-5.0, 5.0]), calibration_y=np.array([0.0, 1.0]),
        stage_classes=("agreed", "talks"),
        stage_weights=np.array([[0.0, 2.0] if n == "c:talks" else [0.0, 0.0] for n in names]),
        stage_bias=np.array([0.5, 0.0]), threshold=0.5, meta={}, stage_prefixes=("c:",))


def test_radar_partnerships_decides_by_the_best_sentence_and_folds_pairs_into_groups():
    model = tiny_model({"c:joint_venture": 3.0, "c:talks": 2.5, "group": 1.0})
    pooled = [PooledCandidate(("A", "B"), [], [frozenset({"c:joint_venture"}), frozenset()]),
              PooledCandidate(("A", "B", "C"), [], [frozenset({"c:joint_venture", "group"})]),
              PooledCandidate(("C", "D"), [], [frozenset({"c:talks"})]),
              PooledCandidate(("D", "E"), [], [frozenset()])]
    found = decide(pooled, model, threshold=0.5)
    assert [f.parties for f in found] == [("A", "B", "C"), ("C", "D")]  # A-B folded, D-E low
    assert found[0].stage == "agreed" and found[1].stage == "talks"
    assert 0.5 <= found[1].probability < found[0].probability <= 1.0


def test_model_artefact_round_trips_byte_identically(tmp_path):
    model = tiny_model({"c:joint_venture": 3.0, "c:talks": 2.5})
    first, second = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    model.save(first)
    PartnershipModel.load(first).save(second)
    assert first.read_bytes() == second.read_bytes()
    again = PartnershipModel.load(second)
    assert again.probabilities([{"c:joint_venture"}])[0] == model.probabilities(
        [{"c:joint_venture"}])[0]


def test_dotted_initials_stay_as_written():
    nlp = spacy.blank("en")
    nlp.add_pipe("radar_companies")
    doc = nlp("Hunterdon Pharmaceuticals Inc formed a venture with E.B. Michaels Research "
              "Associates Inc, and R.M. Wilson Co Inc will sell for Bull S.A.")
    names = {s._.company for s in doc.spans["companies"]}
    assert {"E.B. Michaels Research Associates", "R.M. Wilson", "Bull"} <= names


def test_bracketed_names_broken_over_a_line():
    original = "formed a venture with <Chesapeake\nBiological Laboratories> and <ACME> Inc."
    text = normalise(original)
    assert len(text) == len(original)
    assert "Chesapeake Biological Laboratories" in text and "<" not in text
    assert bracketed_names((original,)) == {"Chesapeake Biological Laboratories"}


def test_a_pronoun_subject_after_an_opening_phrase_joins_the_group():
    # "Acme Co sells chips. In addition, it formed a venture with Gamma Co and Delta Co."
    words = ["Acme", "Co", "sells", "chips", ".", "In", "addition", ",", "it", "formed", "a",
             "venture", "with", "Gamma", "Co", "and", "Delta", "Co", "."]
    heads = [1, 2, 2, 2, 2, 9, 5, 9, 9, 9, 11, 9, 11, 14, 12, 14, 17, 14, 9]
    deps = ["compound", "nsubj", "ROOT", "dobj", "punct", "prep", "pobj", "punct", "nsubj",
            "ROOT", "det", "dobj", "prep", "compound", "pobj", "cc", "compound", "conj",
            "punct"]
    pos = ["PROPN", "PROPN", "VERB", "NOUN", "PUNCT", "ADP", "NOUN", "PUNCT", "PRON", "VERB",
           "DET", "NOUN", "ADP", "PROPN", "PROPN", "CCONJ", "PROPN", "PROPN", "PUNCT"]
    doc = parsed(words, heads, deps, pos, [(0, 2, "Acme"), (13, 15, "Gamma"), (16, 18, "Delta")])
    spacy.blank("en").add_pipe("radar_candidates")(doc)  # type: ignore[operator]
    second = {c.parties: c.features for c in doc._.candidates if c.sentence.start == 5}
    assert ("Acme", "Delta", "Gamma") in second
    assert "gk:pronoun_subject" in second[("Acme", "Delta", "Gamma")]


def _two_sentences(first_verb: str):
    # "Acme Co <first_verb> Beta Inc. Both companies will retain stakes."
    words = ["Acme", "Co", first_verb, "Beta", "Inc", ".", "Both", "companies", "will",
             "retain", "stakes", "."]
    heads = [1, 2, 2, 4, 2, 2, 7, 9, 9, 9, 9, 9]
    deps = ["compound", "nsubj", "ROOT", "compound", "dobj", "punct", "det", "nsubj", "aux",
            "ROOT", "dobj", "punct"]
    pos = ["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "PUNCT", "DET", "NOUN", "AUX", "VERB",
           "NOUN", "PUNCT"]
    doc = parsed(words, heads, deps, pos, [(0, 2, "Acme"), (3, 5, "Beta")])
    spacy.blank("en").add_pipe("radar_candidates")(doc)  # type: ignore[operator]
    return [c for c in doc._.candidates if c.sentence.start == 6]


def test_a_follow_up_sentence_after_a_gate_sentence_proposes_candidates():
    assert NAMES is not None and default_cues().is_follow_up("Both companies will retain")
    second = _two_sentences("licensed")  # a gate sentence, then "Both companies ..."
    assert [c.parties for c in second] == [("Acme", "Beta")]
    assert "follow_up" in second[0].features and second[0].reference
    assert _two_sentences("met") == []  # after a sentence without a gate cue: nothing
