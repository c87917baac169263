"""Train the partnership and stage models from the labelled corpus: `make train`.

1. Candidates of every training article (the corpus minus the frozen held-out slice) come
   from the extractor's own pipeline (`dataset.examples`), labelled by matching the gold
   events: a candidate sentence is a positive instance when its party set is a gold event
   and it is the sentence the labeller quoted. The deal-status set
   (`corpus/reuters21578/deal_status`) adds stage examples.
2. Three models, stacked: the sentence model (a logistic regression over each candidate
   sentence's features), the article model (a logistic regression over what all of an
   article's candidate sentences show together: does it report any partnership?), and the
   party-set model (a logistic regression over `model.SET_FEATURES`, which read the first
   two's scores). The party-set model learns from out-of-fold scores of the first two, so
   it sees them as they behave on articles they were not fitted on.
3. Five-fold cross-validation grouped by story (no story on both sides of a fold) chooses
   the regularisation and the decision threshold by article-level F1, scored exactly as
   the annotation guide says. It is nested for the stacked model: within each outer
   training part, an inner grouped five-fold split yields the out-of-fold scores the
   party-set model is fitted on, so no outer test article leaks into it. The outer
   out-of-fold party-set scores give the isotonic calibration curve.
4. The final models are fitted on every training article (the party-set model on their
   five-fold out-of-fold scores); the artefact is written as gzipped JSON.

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
from services.extractor.model import PartnershipModel, PartySet, SetModel, default_model_path
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
    detect_c: tuple[float, ...] = (0.05, 0.1, 0.3)
    stage_c: tuple[float, ...] = (0.3, 1.0)
    article_c: float = 0.3  # the article model's regularisation (flat under CV, 0.03-1)
    set_c: float = 1.0  # the party-set model's (flat under CV, 0.01-10)
    min_count: int = 2  # features seen in fewer training instances are dropped
    #: The threshold may flag at most this share of no-event articles (under CV): a user
    #: reading the feed cares more about false alarms on ordinary news than about F1.
    max_no_event_rate: float = 0.03
    thresholds: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.1, 0.8, 0.02))
    #: What a set other than the article's most probable must reach too (None: the
    #: threshold alone; above 1: one event per article), lowest first: the lowest within
    #: `other_tolerance` (detection plus strict F1, about one event) of the best wins, so
    #: that a modern story reporting two clear partnerships keeps both.
    other_thresholds: tuple[float | None, ...] = (None, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)
    other_tolerance: float = 0.005


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
        # Columns in index order, not the set's: a frozenset of strings iterates in an order
        # that changes with PYTHONHASHSEED, and so would the sums over a row, by a rounding
        # error that is enough to make `make train` write other bytes.
        found = sorted(i for f in feats if (i := vocab.get(f)) is not None)
        rows.extend([r] * len(found))
        cols.extend(found)
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


def article_rows(per_article: Sequence[Sequence[Example]]
                 ) -> tuple[list[frozenset[str]], list[int]]:
    """Per article with candidates: everything its candidate sentences show, and whether
    any of its candidate sets is a gold event."""
    feats, labels = [], []
    for exs in per_article:
        if exs:
            feats.append(frozenset(f for e in exs for inst in e.instances for f in inst))
            labels.append(int(any(e.positive for e in exs)))
    return feats, labels


def fit_set_model(x: np.ndarray, y: np.ndarray, c: float) -> SetModel:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant column
    clf = LogisticRegression(C=c, solver="lbfgs", max_iter=2000).fit((x - mean) / scale, y)
    return SetModel(mean, scale, clf.coef_[0].copy(), float(clf.intercept_[0]))


@dataclass
class Fitted:
    vocab: dict[str, int]
    detector: LogisticRegression
    article: LogisticRegression
    stagers: dict[float, LogisticRegression]

    def model(self, stage_c: float | None = None, set_model: SetModel | None = None,
              calibration: tuple[np.ndarray, np.ndarray] = (np.array([0.0, 1.0]),
                                                            np.array([0.0, 1.0])),
              threshold: float = 0.5, meta: dict | None = None,
              other_threshold: float | None = None) -> PartnershipModel:
        if self.stagers:
            stager = self.stagers[stage_c if stage_c is not None else next(iter(self.stagers))]
            classes = tuple(str(c) for c in stager.classes_)
            coef, bias = stager.coef_, stager.intercept_
            if len(classes) == 2:  # sklearn keeps one row for two classes
                coef, bias = np.vstack([-coef, coef]), np.array([-bias[0], bias[0]])
        else:  # fitted for detection only (the party-set model's training rows)
            classes = ("agreed",)
            coef, bias = np.zeros((1, len(self.vocab))), np.zeros(1)
        meta = meta or {}
        return PartnershipModel(
            version=meta.get("version", "dev"), vocabulary=dict(self.vocab),
            detect_weights=self.detector.coef_[0].copy(),
            detect_bias=float(self.detector.intercept_[0]),
            calibration_x=calibration[0], calibration_y=calibration[1],
            stage_classes=classes, stage_weights=coef.T.copy(), stage_bias=np.asarray(bias),
            threshold=threshold, meta=meta, stage_prefixes=STAGE_PREFIXES,
            article_weights=self.article.coef_[0].copy(),
            article_bias=float(self.article.intercept_[0]), set_model=set_model,
            other_threshold=other_threshold)


def fit(per_article: Sequence[Sequence[Example]], stage_extra: Sequence[Example],
        settings: Settings, dc: float, stage_cs: Sequence[float]) -> Fitted:
    """Sentence, article and (one per regularisation in `stage_cs`) stage models."""
    exs = [e for a in per_article for e in a]
    feats, labels = detector_rows(exs)
    art_feats, art_labels = article_rows(per_article)
    stage_exs = [e for e in exs if e.positive] + list(stage_extra)
    stage_feats = [stated(e) for e in stage_exs]
    vocab = vocabulary(feats + stage_feats, settings.min_count)
    detector = fit_detector(matrix(feats, vocab), np.array(labels), dc)
    article = fit_detector(matrix(art_feats, vocab), np.array(art_labels), settings.article_c)
    stagers = {}
    if stage_cs:
        stage_x = matrix(stage_feats, vocab)
        stage_y = np.array([e.stage for e in stage_exs])
        stagers = {sc: fit_stager(stage_x, stage_y, sc) for sc in stage_cs}
    return Fitted(vocab, detector, article, stagers)


def isotonic_calibration(scores: np.ndarray, labels: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
    return np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)


def sets_of(exs: Sequence[Example]) -> list[PartySet]:
    return [(e.parties, e.instances, e.profile) for e in exs]


def folds(data: Data, articles: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped by story (GroupKFold is deterministic: no shuffling); article indices."""
    groups = [data.items[a].story for a in articles]
    return [(articles[tr], articles[te])
            for tr, te in GroupKFold(n_splits=n).split(np.zeros(len(articles)), groups=groups)]


def stacking_rows(data: Data, articles: np.ndarray, settings: Settings, dc: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`SET_FEATURES` of every candidate set of `articles` from sentence and article models
    fitted without the set's fold (grouped five-fold within `articles`), and the sets'
    labels: what the party-set model learns from."""
    rows: dict[int, np.ndarray] = {}
    for tr, te in folds(data, articles, settings.folds):
        model = fit([data.per_article[a] for a in tr], [], settings, dc, []).model()
        for a in te:
            if data.per_article[a]:
                rows[a] = model.set_feature_matrix(sets_of(data.per_article[a]))[0]
    with_sets = [a for a in articles if data.per_article[a]]
    x = np.vstack([rows[a] for a in with_sets]) if with_sets else np.zeros((0, 0))
    y = np.array([e.positive for a in with_sets for e in data.per_article[a]], dtype=int)
    return x, y


# --------------------------------------------------------------------------- evaluation

@dataclass
class OutOfFold:
    """Per article, in `Data.per_article` order: raw party-set scores, and per stage
    regularisation the predicted stages."""

    raw: list[np.ndarray]
    stages: dict[float, list[list[str]]]


def out_of_fold(data: Data, settings: Settings, dc: float) -> OutOfFold:
    everything = np.arange(len(data.items))
    raw: list[np.ndarray] = [np.zeros(0)] * len(data.items)
    stages: dict[float, list[list[str]]] = {sc: [[] for _ in data.items]
                                            for sc in settings.stage_c}
    for tr, te in folds(data, everything, settings.folds):
        fitted = fit([data.per_article[a] for a in tr], data.stage_extra, settings, dc,
                     settings.stage_c)
        x, y = stacking_rows(data, tr, settings, dc)
        set_model = fit_set_model(x, y, settings.set_c)
        for sc in settings.stage_c:
            model = fitted.model(sc, set_model)
            for a in te:
                exs = data.per_article[a]
                if not exs:
                    continue
                scores, stating = model.set_scores(sets_of(exs))
                raw[a] = scores
                probs = model.stages(stating)
                stages[sc][a] = [model.stage_classes[int(p.argmax())] for p in probs]
    return OutOfFold(raw, stages)


def predictions(data: Data, raw: Sequence[np.ndarray], stages: Sequence[list[str]],
                calibration: tuple[np.ndarray, np.ndarray], threshold: float,
                other_threshold: float | None = None) -> list[list[Event]]:
    out = []
    for a, exs in enumerate(data.per_article):
        probs = np.interp(raw[a], *calibration) if len(exs) else []
        found = [Partnership(e.parties, st, float(p), 1.0, [], float(r))
                 for e, p, r, st in zip(exs, probs, raw[a], stages[a], strict=True)]
        out.append([Event(list(f.parties), f.stage)
                    for f in select(found, threshold, other_threshold)])
    return out


def article_scores(items: Sequence[Labelled], predicted: Sequence[list[Event]]) -> Scores:
    gold = {i.article.article_id: list(i.events) for i in items}
    pred = {i.article.article_id: p for i, p in zip(items, predicted, strict=True)}
    return score(gold, pred)


def cv_reports(data: Data, settings: Settings, dc: float) -> list[dict]:
    """Per stage regularisation: article-level scores at the best threshold under (nested)
    cross-validation, per-fold figures at that threshold, and the calibration curve from
    the out-of-fold scores."""
    oof = out_of_fold(data, settings, dc)
    flat = np.concatenate([r for r in oof.raw if len(r)])
    labels = np.array([e.positive for exs in data.per_article for e in exs], dtype=float)
    calibration = isotonic_calibration(flat, labels)
    reports = []
    for sc in settings.stage_c:
        per_other = []
        for other in settings.other_thresholds:
            best = None
            for t in settings.thresholds:
                preds = predictions(data, oof.raw, oof.stages[sc], calibration, t, other)
                s = article_scores(data.items, preds)
                key = (s.empty_rate <= settings.max_no_event_rate,
                       s.detection[2] + s.strict_prf[2])
                if best is None or key > best[0]:
                    best = (key, (t, other), s, preds)
            assert best is not None
            per_other.append(best)
        top = max(b[0] for b in per_other)
        _, (threshold, other_threshold), s, preds = next(
            b for b in per_other
            if b[0][0] == top[0] and b[0][1] >= top[1] - settings.other_tolerance)
        per_fold = []
        for _, test_idx in folds(data, np.arange(len(data.items)), settings.folds):
            fs = article_scores([data.items[a] for a in test_idx],
                                [preds[a] for a in test_idx])
            per_fold.append({"detection_f1": round(fs.detection[2], 4),
                             "strict_f1": round(fs.strict_prf[2], 4),
                             "no_event_rate": round(fs.empty_rate, 4)})
        reports.append({"detect_c": dc, "stage_c": sc, "threshold": threshold,
                        "other_threshold": other_threshold, "scores": s.as_dict(),
                        "folds": per_fold,
                        "calibration": calibration})
    return reports


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
          cache: Path | None = None, settings: Settings | None = None) -> dict:
    # One BLAS thread: the same sums in the same order on any machine, so the same model.
    with threadpool_limits(limits=1):
        return _train(out, corpus, cache, settings or Settings())


def _train(out: Path, corpus: Path | None, cache: Path | None, settings: Settings) -> dict:
    started = time.time()
    corpus = corpus or CORPUS
    data = load_data(corpus, cache)
    reports = [r for dc in settings.detect_c for r in cv_reports(data, settings, dc)]
    best = max(reports, key=lambda r: r["scores"]["detection"]["f1"]
               + r["scores"]["strict"]["f1"])
    exs = [e for a in data.per_article for e in a]
    fitted = fit(data.per_article, data.stage_extra, settings, best["detect_c"],
                 [best["stage_c"]])
    x, y = stacking_rows(data, np.arange(len(data.items)), settings, best["detect_c"])
    set_model = fit_set_model(x, y, settings.set_c)
    meta = {
        "trained_on": {
            "corpus": f"{corpus.name}: held-out slice excluded",
            "articles": len(data.items), "party_sets": len(exs),
            "gold_party_sets": int(sum(e.positive for e in exs)),
            "stage_examples": int(sum(e.positive for e in exs)) + len(data.stage_extra),
            "data": fingerprint(corpus / "articles.jsonl", corpus / "gold.jsonl")},
        "cross_validation": rounded({k: best[k] for k in ("detect_c", "stage_c", "threshold",
                                                          "other_threshold", "scores",
                                                          "folds")}
                                    | {"article_c": settings.article_c,
                                       "set_c": settings.set_c}),
        "grid": [rounded({k: r[k] for k in ("detect_c", "stage_c", "threshold",
                                            "other_threshold")}
                         | {"detection_f1": r["scores"]["detection"]["f1"],
                            "strict_f1": r["scores"]["strict"]["f1"]}) for r in reports],
    }
    model = fitted.model(best["stage_c"], set_model, best["calibration"], best["threshold"],
                         meta, best["other_threshold"])
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
