"""The stacked partnership model (sentence, article and party-set models) on hand-made
weights: what the party-set model reads, how it changes a set's score, and that the
artefact keeps it (and still reads the older artefact without it)."""

import gzip
import json

import numpy as np
import pytest

from services.extractor.components.partnerships import (
    Partnership,
    PooledCandidate,
    decide,
    party_profile,
    select,
)
from services.extractor.model import (
    PROFILE_FEATURES,
    SET_FEATURES,
    PartnershipModel,
    SetModel,
    set_features,
)


def model(set_model: SetModel | None = None, article: dict[str, float] | None = None
          ) -> PartnershipModel:
    names = ["c:joint_venture", "c:talks", "t:1"]
    article = article or {}
    return PartnershipModel(
        version="test", vocabulary={n: i for i, n in enumerate(names)},
        detect_weights=np.array([3.0, 1.0, 0.0]), detect_bias=-1.0,
        calibration_x=np.array([-5.0, 5.0]), calibration_y=np.array([0.0, 1.0]),
        stage_classes=("agreed", "talks"), stage_weights=np.zeros((3, 2)),
        stage_bias=np.array([0.5, 0.0]), threshold=0.5, meta={}, stage_prefixes=("c:",),
        article_weights=np.array([article.get(n, 0.0) for n in names]), article_bias=-0.5,
        set_model=set_model)


def only(feature: str, weight: float, bias: float = 0.0) -> SetModel:
    """A party-set model reading one of `SET_FEATURES` (unstandardised)."""
    weights = np.zeros(len(SET_FEATURES))
    weights[SET_FEATURES.index(feature)] = weight
    return SetModel(np.zeros(len(SET_FEATURES)), np.ones(len(SET_FEATURES)), weights, bias)


SETS = [(("A", "B"), [frozenset({"c:joint_venture"}), frozenset({"c:talks"})]),
        (("A", "B", "C"), [frozenset({"c:talks", "t:1"})]),
        (("C", "D"), [frozenset()])]


def column(x: np.ndarray, name: str) -> list[float]:
    return [round(float(v), 6) for v in x[:, SET_FEATURES.index(name)]]


def test_set_features_read_scores_ranks_and_overlaps():
    raw = [np.array([2.0, 0.0]), np.array([0.0]), np.array([-1.0])]
    x = set_features(SETS, raw, article=0.7)
    assert x.shape == (3, len(SET_FEATURES))
    assert column(x, "best") == [2.0, 0.0, -1.0]
    assert column(x, "second") == [0.0, -2.0, -3.0]  # one sentence: best minus a margin
    assert column(x, "one_sentence") == [0.0, 1.0, 1.0]
    assert column(x, "rank_first") == [1.0, 0.0, 0.0]
    assert column(x, "rank_second") == [0.0, 1.0, 0.0]
    assert column(x, "best_minus_article_best") == [0.0, -2.0, -3.0]
    # A-B lies inside A-B-C; C-D overlaps A-B-C without either containing the other
    assert column(x, "has_superset") == [1.0, 0.0, 0.0]
    assert column(x, "superset_best_minus_best") == [-2.0, 0.0, 0.0]
    assert column(x, "has_subset") == [0.0, 1.0, 0.0]
    assert column(x, "has_overlapping") == [0.0, 1.0, 1.0]
    assert column(x, "one_party_in_title") == [0.0, 1.0, 0.0]
    assert column(x, "three_parties") == [0.0, 1.0, 0.0]
    assert column(x, "article") == [0.7, 0.7, 0.7]
    assert column(x, "article_if_first") == [0.7, 0.0, 0.0]


def test_without_a_set_model_a_set_scores_as_its_best_sentence():
    scores, stating = model().set_scores(SETS)
    assert list(scores) == [2.0, 0.0, -1.0]
    assert stating[0] == frozenset({"c:joint_venture"})


def test_the_article_model_scores_what_all_candidate_sentences_show():
    m = model(article={"c:talks": 1.5, "t:1": 2.0})
    flat = [inst for _, instances in SETS for inst in instances]
    assert m.article_score(flat) == pytest.approx(1.5 + 2.0 - 0.5)  # each feature once
    assert model(article={}).article_score([frozenset()]) == pytest.approx(-0.5)


def test_the_set_model_decides_and_the_article_score_moves_every_set():
    pooled = [PooledCandidate(parties, [], list(instances)) for parties, instances in SETS]
    # Only the article score counts: every set of an article that looks like news of a
    # partnership is kept, none of one that does not.
    keen = model(only("article", 2.0), article={"c:talks": 3.0})
    assert [f.parties for f in decide(pooled, keen, 0.5)] == [("A", "B", "C"), ("C", "D")]
    cold = model(only("article", 2.0), article={})
    assert decide(pooled, cold, 0.5) == []
    # Only the rank counts: the article's best set alone.
    first = model(only("rank_first", 6.0, bias=-3.0))
    assert [f.parties for f in decide(pooled, first, 0.5)] == [("A", "B")]


def test_artefact_keeps_the_article_and_set_models(tmp_path):
    sm = SetModel(np.arange(len(SET_FEATURES), dtype=float) / 10,
                  np.full(len(SET_FEATURES), 2.0), np.linspace(-1, 1, len(SET_FEATURES)), 0.25)
    m = model(sm, article={"c:talks": 1.5})
    path, again_path = tmp_path / "m.json.gz", tmp_path / "again.json.gz"
    m.save(path)
    again = PartnershipModel.load(path)
    again.save(again_path)
    assert path.read_bytes() == again_path.read_bytes()
    assert np.allclose(again.set_scores(SETS)[0], m.set_scores(SETS)[0])
    assert again.article_score([frozenset({"c:talks"})]) == pytest.approx(1.0)


def test_an_artefact_whose_set_model_reads_other_features_is_refused(tmp_path):
    path = tmp_path / "m.json.gz"
    model(only("best", 1.0)).save(path)
    data = json.loads(gzip.decompress(path.read_bytes()))
    data["set_model"]["features"] = ["best", "something_else"]
    with pytest.raises(ValueError, match="retrain"):
        PartnershipModel.from_json(data)


def test_a_v1_artefact_still_loads_and_scores_by_the_best_sentence():
    v2 = model(only("best", 1.0)).to_json()
    v1 = {k: v for k, v in v2.items() if k not in ("set_model", "article")}
    v1["format"] = "alliance-radar.partnership-model.v1"
    v1["features"] = {n: [row[0], *row[2:]] for n, row in v2["features"].items()}
    old = PartnershipModel.from_json(v1)
    assert old.set_model is None and old.article_weights is None
    assert list(old.set_scores(SETS)[0]) == [2.0, 0.0, -1.0]
    assert old.stage_classes == ("agreed", "talks")


def test_sets_after_the_articles_most_probable_must_reach_the_other_threshold(tmp_path):
    pooled = [PooledCandidate(parties, [], list(instances)) for parties, instances in SETS]
    m = model(only("best", 1.0))  # calibrated: A-B 0.7, A-B-C 0.5, C-D 0.4
    assert [f.parties for f in decide(pooled, m, 0.35)] == [("A", "B"), ("A", "B", "C"),
                                                             ("C", "D")]
    m.other_threshold = 0.45  # the most probable set needs the threshold, the others this
    assert [f.parties for f in decide(pooled, m, 0.35)] == [("A", "B"), ("A", "B", "C")]
    m.other_threshold = 1.01  # one event per article
    assert [f.parties for f in decide(pooled, m, 0.35)] == [("A", "B")]
    assert decide(pooled, m, 0.75) == []  # the first set still needs the threshold
    path = tmp_path / "m.json.gz"
    m.save(path)
    assert PartnershipModel.load(path).other_threshold == 1.01
    legacy = m.to_json()
    del legacy["other_threshold"]  # an artefact from before the second threshold
    assert PartnershipModel.from_json(legacy).other_threshold is None


def test_ties_in_probability_go_to_the_higher_raw_score():
    found = [Partnership(("A", "B"), "agreed", 0.6, 1.0, [], score=0.1),
             Partnership(("C", "D"), "agreed", 0.6, 1.0, [], score=0.4)]
    assert [f.parties for f in select(found, 0.5, 0.9)] == [("C", "D")]
    assert [f.parties for f in select(found, 0.5)] == [("A", "B"), ("C", "D")]


def test_the_party_profile_counts_how_the_whole_article_names_each_party():
    named = [(0, "Texaco"), (40, "Honeywell Inc"), (90, "Texaco"), (130, "Icotron"),
             (170, "Texaco"), (200, "Honeywell")]
    mentions, mean, never, latest, companies = party_profile(("Texaco", "Honeywell"), named)
    assert mentions == pytest.approx(np.log1p(2))  # Honeywell twice (one in full), Texaco 3
    assert mean == pytest.approx(np.log1p(2.5))
    assert never == 0.0
    assert latest == pytest.approx(np.log1p(1))  # Honeywell is the second company named
    assert companies == pytest.approx(np.log1p(4))  # distinct names as written
    passing = party_profile(("Texaco", "Chevron"), named)
    assert passing[0] == 0.0 and passing[2] == 0.5
    assert passing[3] == pytest.approx(np.log1p(4))  # never named: after every company


def test_the_profile_is_read_last_and_reads_as_zeros_when_absent():
    profile = (1.0, 2.0, 0.5, 0.3, 1.5)
    with_profile = [(*SETS[0], profile), *SETS[1:]]
    x = set_features(with_profile, [np.array([2.0, 0.0]), np.array([0.0]), np.array([-1.0])],
                     article=0.0)
    assert list(x[0, -len(PROFILE_FEATURES):]) == list(profile)
    assert not x[1:, -len(PROFILE_FEATURES):].any()
    assert SET_FEATURES[-len(PROFILE_FEATURES):] == PROFILE_FEATURES


def test_an_artefact_from_before_the_party_profile_scores_as_it_was_trained():
    m = model(only("best", 1.0))
    data = m.to_json()
    cut = len(SET_FEATURES) - len(PROFILE_FEATURES)
    for key in ("features", "mean", "scale", "weights"):
        data["set_model"][key] = data["set_model"][key][:cut]
    old = PartnershipModel.from_json(data)
    with_profile = [(*entry, (3.0, 3.0, 1.0, 3.0, 3.0)) for entry in SETS]
    assert np.allclose(old.set_scores(with_profile)[0], m.set_scores(SETS)[0])


def test_feature_rows_come_in_index_order_whatever_the_sets_iteration_order():
    """A frozenset of strings iterates in an order that changes with PYTHONHASHSEED; a row's
    sum in that order differs by a rounding error, enough for `make train` to write other
    bytes on another run (seen in a fresh-clone CI run). Rows are read in index order."""
    from services.extractor.training.train import matrix

    names = [f"w:{k}" for k in range(40)]
    vocab = {n: i for i, n in enumerate(names)}
    feats = frozenset(reversed(names))
    m = matrix([feats, frozenset(names[::3])], vocab)
    assert m.has_sorted_indices
    assert list(m.indices[m.indptr[0]:m.indptr[1]]) == list(range(40))
    w = np.arange(40, dtype=float)
    rows = PartnershipModel(
        version="t", vocabulary=vocab, detect_weights=w, detect_bias=0.0,
        calibration_x=np.array([0.0, 1.0]), calibration_y=np.array([0.0, 1.0]),
        stage_classes=("agreed",), stage_weights=np.zeros((40, 1)), stage_bias=np.zeros(1),
        threshold=0.5, meta={}, stage_prefixes=("w:",))._rows([feats])
    assert list(rows[0]) == list(range(40))
