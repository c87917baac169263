"""The trained partnership and stage models, as a small JSON artefact read with numpy.

Linear models over binary features (the strings `radar_candidates` records):
- a sentence model: a logistic regression scoring each candidate sentence of a party set;
- an article model: a logistic regression over everything the article's candidate sentences
  show together, scoring whether the article reports any partnership at all;
- a party-set model stacked on both (`SET_FEATURES`: the set's best, second and mean
  sentence score, how many sentences support it, how it ranks against the article's other
  sets and against the sets it overlaps, the article score, ...), its score mapped to a
  calibrated probability by an isotonic curve fitted on out-of-fold scores;
- a multinomial logistic regression for the stage, reading the set's best sentence.
`make train` writes the artefact (services/extractor/training/train.py); nothing here
depends on scikit-learn, and loading is plain JSON, never unpickling.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import spacy

FORMAT = "alliance-radar.partnership-model.v2"
#: The artefact before the article and party-set models (read; a set scores as its best
#: sentence).
FORMAT_V1 = "alliance-radar.partnership-model.v1"

#: How the whole article names a party set (`partnerships.party_profile`), last in
#: `SET_FEATURES`.
PROFILE_FEATURES = ("min_party_mentions", "mean_party_mentions", "parties_never_named",
                    "latest_first_named", "log_companies")
#: What the party-set model reads of one candidate party set, in this order (the artefact
#: names them; a model trained on another list is refused). Scores are the sentence model's
#: raw scores; "rank" is among the article's sets by best sentence score.
SET_FEATURES = (
    "best", "second", "mean", "log_sentences", "one_sentence",
    "best_minus_article_best", "rank_first", "rank_second",
    "superset_best_minus_best", "has_superset", "subset_best_minus_best", "has_subset",
    "overlapping_best_minus_best", "has_overlapping",
    "one_party_in_title", "two_parties_in_title", "three_parties", "four_or_more_parties",
    "in_lead", "only_referred", "log_sets_in_article", "protagonist", "share_in_lead",
    "article", "article_if_first",
    *PROFILE_FEATURES,
)
#: Stands in for the second-best sentence score of a set proposed by one sentence.
_NO_SECOND = 2.0


#: A candidate party set as the models read it: (parties, one feature set per candidate
#: sentence[, its `PROFILE_FEATURES`]); without a profile the profile reads as zeros.
PartySet = tuple


def set_features(sets: Sequence[PartySet], raw: Sequence[np.ndarray], article: float
                 ) -> np.ndarray:
    """`SET_FEATURES` of each of an article's candidate sets (`PartySet`), from the sentence
    model's raw scores of those sentences and the article model's score. Shared by
    training and inference."""
    if not sets:
        return np.zeros((0, len(SET_FEATURES)))
    best = np.array([r.max() for r in raw])
    top = best.max()
    rank = np.empty(len(best), dtype=np.int64)
    rank[np.argsort(-best, kind="stable")] = np.arange(len(best))
    members = [frozenset(entry[0]) for entry in sets]
    rows = []
    for k, (entry, scores) in enumerate(zip(sets, raw, strict=True)):
        parties, instances = entry[0], entry[1]
        profile = entry[2] if len(entry) > 2 and entry[2] else (0.0,) * len(PROFILE_FEATURES)
        mine = members[k]
        ordered = np.sort(scores)[::-1]
        second = ordered[1] if len(ordered) > 1 else ordered[0] - _NO_SECOND
        sup = [best[j] for j, o in enumerate(members) if j != k and mine < o]
        sub = [best[j] for j, o in enumerate(members) if j != k and o < mine]
        overlap = [best[j] for j, o in enumerate(members)
                   if j != k and mine & o and not (mine < o or o < mine)]
        stating = instances[int(scores.argmax())]
        in_title = 2 if "t:2" in stating else 1 if "t:1" in stating else 0
        n = len(scores)
        lead = sum(1 for i in instances if "lead" in i)
        rows.append([
            ordered[0], second, scores.mean(), np.log1p(n), float(n == 1),
            ordered[0] - top, float(rank[k] == 0), float(rank[k] == 1),
            max(sup) - ordered[0] if sup else 0.0, float(bool(sup)),
            max(sub) - ordered[0] if sub else 0.0, float(bool(sub)),
            max(overlap) - ordered[0] if overlap else 0.0, float(bool(overlap)),
            float(in_title == 1), float(in_title == 2), float(len(parties) == 3),
            float(len(parties) >= 4), float(lead > 0), float(all("ref" in i for i in instances)),
            np.log1p(len(sets)), float("protagonist" in stating), lead / n,
            article, article if rank[k] == 0 else 0.0, *profile,
        ])
    return np.array(rows, dtype=np.float64)


@dataclass
class SetModel:
    """The party-set model: a logistic regression over standardised `SET_FEATURES`."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias


@dataclass
class PartnershipModel:
    version: str
    vocabulary: dict[str, int]
    detect_weights: np.ndarray  # (n_features,)
    detect_bias: float
    calibration_x: np.ndarray  # raw score thresholds, increasing
    calibration_y: np.ndarray  # calibrated probability at each threshold
    stage_classes: tuple[str, ...]
    stage_weights: np.ndarray  # (n_features, n_classes)
    stage_bias: np.ndarray  # (n_classes,)
    threshold: float  # default decision threshold on the calibrated probability
    meta: dict[str, Any]
    #: Feature prefixes the stage model reads (of the sentence that states the partnership).
    stage_prefixes: tuple[str, ...] = ()
    #: The article model's weights (same vocabulary) and bias; None: no article model.
    article_weights: np.ndarray | None = None
    article_bias: float = 0.0
    #: The party-set model; None: a set scores as its best sentence (a v1 artefact).
    set_model: SetModel | None = None
    #: The calibrated probability every set but the article's most probable one must reach
    #: too (chosen by cross-validation); None: the threshold alone.
    other_threshold: float | None = None

    def _rows(self, feature_sets: Sequence[Iterable[str]]) -> list[np.ndarray]:
        vocab = self.vocabulary
        # Sorted: a set of features iterates in an order that changes with PYTHONHASHSEED,
        # and a sum's rounding with it (training must be byte-for-byte reproducible).
        return [np.sort(np.fromiter((vocab[f] for f in feats if f in vocab), dtype=np.int64))
                for feats in feature_sets]

    def scores(self, feature_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """Raw (uncalibrated) decision scores."""
        w = self.detect_weights
        return np.array([w[idx].sum() + self.detect_bias for idx in self._rows(feature_sets)])

    def article_score(self, feature_sets: Sequence[Iterable[str]]) -> float:
        """Raw score of the article model over everything the candidate sentences show."""
        if self.article_weights is None:
            return 0.0
        seen = {f for feats in feature_sets for f in feats}
        idx = np.fromiter((self.vocabulary[f] for f in seen if f in self.vocabulary),
                          dtype=np.int64)
        return float(self.article_weights[np.sort(idx)].sum() + self.article_bias)

    def set_feature_matrix(self, sets: Sequence[PartySet]
                           ) -> tuple[np.ndarray, list[np.ndarray], list[frozenset[str]]]:
        """For an article's candidate sets (`PartySet`): their `SET_FEATURES`, the sentence
        model's raw scores of each set's sentences, and the features of each set's best
        sentence (the one that states it, what the stage model reads)."""
        flat = [inst for entry in sets for inst in entry[1]]
        raw = self.scores(flat) if flat else np.zeros(0)
        per_set, stating, at = [], [], 0
        for entry in sets:
            instances = entry[1]
            mine = raw[at:at + len(instances)]
            per_set.append(mine)
            stating.append(instances[int(mine.argmax())])
            at += len(instances)
        return set_features(sets, per_set, self.article_score(flat)), per_set, stating

    def set_scores(self, sets: Sequence[PartySet]) -> tuple[np.ndarray, list[frozenset[str]]]:
        """Raw (uncalibrated) score of each of an article's candidate sets (`PartySet`), and
        the features of each set's best sentence."""
        if not sets:
            return np.zeros(0), []
        x, per_set, stating = self.set_feature_matrix(sets)
        if self.set_model is None:
            return np.array([r.max() for r in per_set]), stating
        return self.set_model.scores(x), stating

    def calibrate(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=float), self.calibration_x,
                         self.calibration_y)

    def probabilities(self, feature_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """Calibrated probability that each candidate is a partnership the article reports."""
        if not feature_sets:
            return np.zeros(0)
        return self.calibrate(self.scores(feature_sets))

    def stage_features(self, features: Iterable[str]) -> frozenset[str]:
        return frozenset(f for f in features if f.startswith(self.stage_prefixes))

    def stages(self, feature_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """Stage probabilities, one row per candidate, columns in `stage_classes` order."""
        if not feature_sets:
            return np.zeros((0, len(self.stage_classes)))
        rows = self._rows([self.stage_features(f) for f in feature_sets])
        logits = np.stack([self.stage_weights[idx].sum(axis=0) + self.stage_bias
                           for idx in rows])
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    # -- artefact

    def to_json(self) -> dict[str, Any]:
        names = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        article = (self.article_weights if self.article_weights is not None
                   else np.zeros(len(names)))
        out = {
            "format": FORMAT,
            "version": self.version,
            "meta": self.meta,
            "threshold": round(self.threshold, 6),
            "other_threshold": (None if self.other_threshold is None
                                else round(self.other_threshold, 6)),
            "detect": {"bias": round(float(self.detect_bias), 6),
                       "calibration": {"x": [round(float(v), 6) for v in self.calibration_x],
                                       "y": [round(float(v), 6) for v in self.calibration_y]}},
            "stage": {"classes": list(self.stage_classes),
                      "bias": [round(float(v), 6) for v in self.stage_bias],
                      "feature_prefixes": list(self.stage_prefixes)},
            "article": {"bias": round(float(self.article_bias), 6),
                        "present": self.article_weights is not None},
            # One row per feature: its sentence (detection) weight, its article weight, then
            # its stage weights.
            "features": {name: [round(float(self.detect_weights[i]), 5),
                                round(float(article[i]), 5),
                                *(round(float(v), 5) for v in self.stage_weights[i])]
                         for i, name in enumerate(names)},
        }
        if self.set_model is not None:
            m = self.set_model
            out["set_model"] = {"features": list(SET_FEATURES),
                                "mean": [round(float(v), 6) for v in m.mean],
                                "scale": [round(float(v), 6) for v in m.scale],
                                "weights": [round(float(v), 6) for v in m.weights],
                                "bias": round(float(m.bias), 6)}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartnershipModel:
        fmt = data.get("format")
        if fmt not in (FORMAT, FORMAT_V1):
            raise ValueError(f"not a partnership model artefact: {fmt!r}")
        names = list(data["features"])
        first_stage = 2 if fmt == FORMAT else 1
        rows = np.array([data["features"][n] for n in names], dtype=np.float64).reshape(
            len(names), first_stage + len(data["stage"]["classes"]))
        set_model = None
        if "set_model" in data:
            sm = data["set_model"]
            read = tuple(sm["features"])
            if read != SET_FEATURES[:len(read)] or len(read) < len(SET_FEATURES) - len(
                    PROFILE_FEATURES):
                raise ValueError("the artefact's party-set model reads other features than "
                                 "this code computes: retrain it (make train)")
            # An artefact from before the party profile gives it no weight: it scores as
            # it was trained.
            pad = len(SET_FEATURES) - len(read)
            set_model = SetModel(np.r_[sm["mean"], np.zeros(pad)],
                                 np.r_[sm["scale"], np.ones(pad)],
                                 np.r_[sm["weights"], np.zeros(pad)], float(sm["bias"]))
        has_article = fmt == FORMAT and data.get("article", {}).get("present", False)
        return cls(version=data["version"], vocabulary={n: i for i, n in enumerate(names)},
                   detect_weights=rows[:, 0].copy(), detect_bias=data["detect"]["bias"],
                   calibration_x=np.array(data["detect"]["calibration"]["x"]),
                   calibration_y=np.array(data["detect"]["calibration"]["y"]),
                   stage_classes=tuple(data["stage"]["classes"]),
                   stage_weights=rows[:, first_stage:].copy(),
                   stage_bias=np.array(data["stage"]["bias"]),
                   threshold=data["threshold"], meta=data.get("meta", {}),
                   other_threshold=data.get("other_threshold"),
                   stage_prefixes=tuple(data["stage"].get("feature_prefixes", ())),
                   article_weights=rows[:, 1].copy() if has_article else None,
                   article_bias=float(data.get("article", {}).get("bias", 0.0)),
                   set_model=set_model)

    def save(self, path: Path) -> None:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        # mtime=0: the same model gives byte-identical files (reproducible `make train`).
        with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                   mtime=0) as out:
            out.write(text.encode())

    @classmethod
    def load(cls, path: Path) -> PartnershipModel:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return cls.from_json(json.load(fh))


def default_model_path() -> Path:
    return Path(str(resources.files("services.extractor").joinpath(
        "data", "partnership-model.json.gz")))


@cache
def load_model(path: str | None = None) -> PartnershipModel:
    return PartnershipModel.load(Path(path) if path else default_model_path())


@spacy.registry.misc("radar.partnership_model.v1")
def partnership_model(path: str | None = None) -> PartnershipModel:
    """The trained model a pipeline config names: the packaged one unless `path` is given."""
    return load_model(path)
