"""The trained partnership and stage models, as a small JSON artefact read with numpy.

Both are linear models over binary features (the strings `radar_candidates` records): a
logistic regression that scores whether a candidate party set is a partnership the article
reports, mapped to a calibrated probability by an isotonic curve fitted on out-of-fold
scores, and a multinomial logistic regression for the stage. `make train` writes the
artefact (services/extractor/training/train.py); nothing here depends on scikit-learn, and
loading is plain JSON, never unpickling.
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

    def _rows(self, feature_sets: Sequence[Iterable[str]]) -> list[np.ndarray]:
        vocab = self.vocabulary
        return [np.fromiter((vocab[f] for f in feats if f in vocab), dtype=np.int64)
                for feats in feature_sets]

    def scores(self, feature_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """Raw (uncalibrated) decision scores."""
        w = self.detect_weights
        return np.array([w[idx].sum() + self.detect_bias for idx in self._rows(feature_sets)])

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
        return {
            "format": "alliance-radar.partnership-model.v1",
            "version": self.version,
            "meta": self.meta,
            "threshold": round(self.threshold, 6),
            "detect": {"bias": round(float(self.detect_bias), 6),
                       "calibration": {"x": [round(float(v), 6) for v in self.calibration_x],
                                       "y": [round(float(v), 6) for v in self.calibration_y]}},
            "stage": {"classes": list(self.stage_classes),
                      "bias": [round(float(v), 6) for v in self.stage_bias],
                      "feature_prefixes": list(self.stage_prefixes)},
            # One row per feature: its detection weight, then its stage weights.
            "features": {name: [round(float(self.detect_weights[i]), 5),
                                *(round(float(v), 5) for v in self.stage_weights[i])]
                         for i, name in enumerate(names)},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartnershipModel:
        if data.get("format") != "alliance-radar.partnership-model.v1":
            raise ValueError(f"not a partnership model artefact: {data.get('format')!r}")
        names = list(data["features"])
        rows = np.array([data["features"][n] for n in names], dtype=np.float64).reshape(
            len(names), 1 + len(data["stage"]["classes"]))
        return cls(version=data["version"], vocabulary={n: i for i, n in enumerate(names)},
                   detect_weights=rows[:, 0].copy(), detect_bias=data["detect"]["bias"],
                   calibration_x=np.array(data["detect"]["calibration"]["x"]),
                   calibration_y=np.array(data["detect"]["calibration"]["y"]),
                   stage_classes=tuple(data["stage"]["classes"]),
                   stage_weights=rows[:, 1:].copy(),
                   stage_bias=np.array(data["stage"]["bias"]),
                   threshold=data["threshold"], meta=data.get("meta", {}),
                   stage_prefixes=tuple(data["stage"].get("feature_prefixes", ())))

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
