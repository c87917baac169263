"""Train the partnership and stage models from the labelled corpus: `make train`.

1. Candidates of every training article (the corpus minus the frozen held-out slice) come
   from the extractor's own pipeline (`dataset.examples`), labelled by matching the gold
   events: a candidate sentence is a positive instance when its party set is a gold event
   and it is the sentence the labeller quoted. The deal-status set
   (`corpus/reuters21578/deal_status`) adds stage examples.
2. Five-fold cross-validation grouped by story (no story on both sides of a fold) chooses
   the regularisation and the decision threshold by article-level F1, scored exactly as
   the annotation guide says, and yields out-of-fold scores for the calibration curve.
3. The final models are fitted on every training article; the isotonic calibration curve
   comes from the out-of-fold scores; the artefact is written as gzipped JSON.

Deterministic: fixed data order, fixed folds, solvers without randomness, one thread.
The held-out slice is never read here.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from services.extractor.components.partnerships import Partnership, select
from services.extractor.evaluation import Event, Scores, score
from services.extractor.model import PartnershipModel, default_model_path
from services.extractor.training.corpus import CORPUS, Labelled, load, training_part
from services.extractor.training.dataset import STATES, Example, examples

#: What the stage model reads of the sentence stating a partnership: the cue table's signals,
#: the headline's, verb tenses, the stage cues near the parties, and the sentence's words.
#: Chosen by cross-validated macro recall over the stages, so that rare stages (failed,
#: ended, rumored, talks) are not drowned by the wire's many agreed and active ones.
STAGE_PREFIXES = ("c:", "h:", "tag:", "cb:", "an:stage", "a:stage", "sw:")


@dataclass(frozen=True)
class Settings:
    folds: int = 5
    detect_c: tuple[float, ...] = (0.1, 0.3, 1.0)
    stage_c: tuple[float, ...] = (0.3, 1.0)
    min_count: int = 2  # features seen in fewer training instances are dropped
    #: The threshold may flag at most this share of no-event articles (under CV): a user
    #: reading the feed cares more about false alarms on ordinary news than about F1.
    max_no_event_rate: float = 0.03
    thresholds: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.1, 0.8, 0.02))


@dataclass
class Data:
    items: list[Labelled]
    per_article: list[list[Example]]
    stage_extra: list[Example] = field(default_factory=list)


# --------------------------------------------------------------------------- features

def vocabulary(feature_sets: Sequence[frozenset[str]], min_count: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for feats in feature_sets:
        for f in feats:
            counts[f] = counts.get(f, 0) + 1
    kept = sorted(f for f, n in counts.items() if n >= min_count)
    return {f: i for i, f in enumerate(kept)}


def matrix(feature_sets: Sequence[frozenset[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    rows, cols = [], []
    for r, feats in enumerate(feature_sets):
        for f in feats:
            i = vocab.get(f)
            if i is not None:
                rows.append(r)
                cols.append(i)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                             shape=(len(feature_sets), len(vocab)))


def stated(example: Example) -> frozenset[str]:
    """Features of the sentence(s) the labeller quoted (all of the set's, if none was)."""
    quoted = [f for f, lab in zip(example.instances, example.labels, strict=True)
              if lab == STATES]
    chosen = quoted or list(example.instances)
    return frozenset(f for feats in chosen for f in feats if f.startswith(STAGE_PREFIXES))


def detector_rows(exs: Sequence[Example]) -> tuple[list[frozenset[str]], list[int]]:
    """Instances to learn detection from: the quoted sentence of a gold event (or all its
    sentences, if none was quoted among them) against every sentence of a non-event."""
    feats, labels = [], []
    for e in exs:
        if not e.positive:
            feats += e.instances
            labels += [0] * len(e.instances)
            continue
        stated = [f for f, lab in zip(e.instances, e.labels, strict=True) if lab == STATES]
        for f in stated or e.instances:
            feats.append(f)
            labels.append(1)
    return feats, labels


# --------------------------------------------------------------------------- fitting

def fit_detector(x: sparse.csr_matrix, y: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=0).fit(x, y)


def fit_stager(x: sparse.csr_matrix, y: np.ndarray, c: float) -> LogisticRegression:
    # Balanced: failed, ended, rumored and talks are rare on the wire; unweighted, the
    # model all but never predicts them.
    return LogisticRegression(C=c, solver="lbfgs", max_iter=3000,
                              class_weight="balanced").fit(x, y)


@dataclass
class Fitted:
    vocab: dict[str, int]
    detector: LogisticRegression
    stager: LogisticRegression

    def model(self, calibration: tuple[np.ndarray, np.ndarray], threshold: float,
              meta: dict) -> PartnershipModel:
        classes = tuple(str(c) for c in self.stager.classes_)
        coef, bias = self.stager.coef_, self.stager.intercept_
        if len(classes) == 2:  # sklearn keeps one row for two classes
            coef, bias = np.vstack([-coef, coef]), np.array([-bias[0], bias[0]])
        return PartnershipModel(
            version=meta.get("version", "dev"), vocabulary=dict(self.vocab),
            detect_weights=self.detector.coef_[0].copy(),
            detect_bias=float(self.detector.intercept_[0]),
            calibration_x=calibration[0], calibration_y=calibration[1],
            stage_classes=classes, stage_weights=coef.T.copy(), stage_bias=np.asarray(bias),
            threshold=threshold, meta=meta, stage_prefixes=STAGE_PREFIXES)


def fit(exs: Sequence[Example], stage_extra: Sequence[Example], settings: Settings,
        dc: float, sc: float) -> Fitted:
    feats, labels = detector_rows(exs)
    stage_exs = [e for e in exs if e.positive] + list(stage_extra)
    stage_feats = [stated(e) for e in stage_exs]
    vocab = vocabulary(feats + stage_feats, settings.min_count)
    detector = fit_detector(matrix(feats, vocab), np.array(labels), dc)
    stager = fit_stager(matrix(stage_feats, vocab), np.array([e.stage for e in stage_exs]), sc)
    return Fitted(vocab, detector, stager)


def isotonic_calibration(scores: np.ndarray, labels: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
    return np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)


def set_scores(model: PartnershipModel, exs: Sequence[Example]
               ) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Raw score of each party set, its best sentence's, and that sentence's features (as
    `score_sets` does)."""
    flat = [f for e in exs for f in e.instances]
    raw = model.scores(flat) if flat else np.zeros(0)
    out, best, at = [], [], 0
    for e in exs:
        mine = raw[at:at + len(e.instances)]
        out.append(mine.max())
        best.append(e.instances[int(mine.argmax())])
        at += len(e.instances)
    return np.array(out), best


# --------------------------------------------------------------------------- evaluation

@dataclass
class OutOfFold:
    """Per example, in `Data.per_article` order: raw set score and predicted stage."""

    raw: list[np.ndarray]
    stages: list[list[str]]


def out_of_fold(data: Data, settings: Settings, dc: float, sc: float) -> OutOfFold:
    groups = [item.story for item in data.items]
    raw: list[np.ndarray] = [np.zeros(0)] * len(data.items)
    stages: list[list[str]] = [[] for _ in data.items]
    # GroupKFold is deterministic (no shuffling); stories never straddle two folds.
    splits = GroupKFold(n_splits=settings.folds).split(np.zeros(len(groups)), groups=groups)
    for train_idx, test_idx in splits:
        fitted = fit([e for a in train_idx for e in data.per_article[a]], data.stage_extra,
                     settings, dc, sc)
        model = fitted.model((np.array([0.0, 1.0]), np.array([0.0, 1.0])), 0.5, {})
        for a in test_idx:
            exs = data.per_article[a]
            if not exs:
                continue
            raw[a], stating = set_scores(model, exs)
            probs = model.stages(stating)
            stages[a] = [model.stage_classes[int(p.argmax())] for p in probs]
    return OutOfFold(raw, stages)


def predictions(data: Data, oof: OutOfFold, calibration: tuple[np.ndarray, np.ndarray],
                threshold: float) -> list[list[Event]]:
    out = []
    for a, exs in enumerate(data.per_article):
        probs = np.interp(oof.raw[a], *calibration) if len(exs) else []
        found = [Partnership(e.parties, st, float(p), 1.0, [])
                 for e, p, st in zip(exs, probs, oof.stages[a], strict=True)]
        out.append([Event(list(f.parties), f.stage) for f in select(found, threshold)])
    return out


def article_scores(items: Sequence[Labelled], predicted: Sequence[list[Event]]) -> Scores:
    gold = {i.article.article_id: list(i.events) for i in items}
    pred = {i.article.article_id: p for i, p in zip(items, predicted, strict=True)}
    return score(gold, pred)


def cv_report(data: Data, settings: Settings, dc: float, sc: float) -> dict:
    """Article-level scores at the best threshold under cross-validation, per-fold figures
    at that threshold, and the calibration curve from the out-of-fold scores."""
    oof = out_of_fold(data, settings, dc, sc)
    flat = np.concatenate([r for r in oof.raw if len(r)])
    labels = np.array([e.positive for exs in data.per_article for e in exs], dtype=float)
    calibration = isotonic_calibration(flat, labels)
    best = None
    for t in settings.thresholds:
        preds = predictions(data, oof, calibration, t)
        s = article_scores(data.items, preds)
        key = (s.empty_rate <= settings.max_no_event_rate, s.detection[2] + s.strict_prf[2])
        if best is None or key > best[0]:
            best = (key, t, s, preds)
    assert best is not None
    _, threshold, s, preds = best
    groups = [item.story for item in data.items]
    per_fold = []
    for _, test_idx in GroupKFold(n_splits=settings.folds).split(np.zeros(len(groups)),
                                                                 groups=groups):
        fs = article_scores([data.items[a] for a in test_idx], [preds[a] for a in test_idx])
        per_fold.append({"detection_f1": round(fs.detection[2], 4),
                         "strict_f1": round(fs.strict_prf[2], 4),
                         "no_event_rate": round(fs.empty_rate, 4)})
    return {"detect_c": dc, "stage_c": sc, "threshold": threshold, "scores": s.as_dict(),
            "folds": per_fold, "calibration": calibration}


# --------------------------------------------------------------------------- entry point

def load_data(corpus: Path = CORPUS, cache: Path | None = None) -> Data:
    from services.extractor.pipeline import Extractor, load_nlp

    if cache and cache.exists():
        return pickle.loads(cache.read_bytes())
    extractor = Extractor(load_nlp(decide=False))
    items = training_part(load(corpus))
    data = Data(items, [exs for _, exs in examples(extractor, items)])
    status = corpus / "deal_status"
    if (status / "gold.jsonl").exists():
        extra = load(status, "articles.jsonl", "gold.jsonl")
        data.stage_extra = [e for _, exs in examples(extractor, extra) for e in exs
                            if e.positive]
    if cache:
        cache.write_bytes(pickle.dumps(data))
    return data


def fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def rounded(obj: object) -> object:
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v) for v in obj]
    return obj


def train(out: Path = default_model_path(), corpus: Path | None = None,
          cache: Path | None = None) -> dict:
    # One BLAS thread: the same sums in the same order on any machine, so the same model.
    with threadpool_limits(limits=1):
        return _train(out, corpus, cache)


def _train(out: Path, corpus: Path | None, cache: Path | None) -> dict:
    started = time.time()
    settings = Settings()
    corpus = corpus or CORPUS
    data = load_data(corpus, cache)
    reports = [cv_report(data, settings, dc, sc)
               for dc in settings.detect_c for sc in settings.stage_c]
    best = max(reports, key=lambda r: r["scores"]["detection"]["f1"]
               + r["scores"]["strict"]["f1"])
    exs = [e for a in data.per_article for e in a]
    fitted = fit(exs, data.stage_extra, settings, best["detect_c"], best["stage_c"])
    meta = {
        "trained_on": {
            "corpus": f"{corpus.name}: held-out slice excluded",
            "articles": len(data.items), "party_sets": len(exs),
            "gold_party_sets": int(sum(e.positive for e in exs)),
            "stage_examples": int(sum(e.positive for e in exs)) + len(data.stage_extra),
            "data": fingerprint(corpus / "articles.jsonl", corpus / "gold.jsonl")},
        "cross_validation": rounded({k: best[k] for k in ("detect_c", "stage_c", "threshold",
                                                          "scores", "folds")}),
        "grid": [rounded({k: r[k] for k in ("detect_c", "stage_c", "threshold")}
                         | {"detection_f1": r["scores"]["detection"]["f1"],
                            "strict_f1": r["scores"]["strict"]["f1"]}) for r in reports],
    }
    model = fitted.model(best["calibration"], best["threshold"], meta)
    body = json.dumps(model.to_json() | {"version": ""}, sort_keys=True).encode()
    model.version = "m" + hashlib.sha256(body).hexdigest()[:10]
    model.meta["version"] = model.version
    model.save(out)
    return {"model": str(out), "version": model.version,
            "seconds": round(time.time() - started), **meta}


if __name__ == "__main__":
    import sys

    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(json.dumps(train(cache=cache), indent=1))
