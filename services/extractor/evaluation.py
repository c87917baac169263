"""Score predicted partnership events against gold, exactly as the annotation guide says.

A predicted event matches a gold event of the same article when both have the same number of
parties and each gold party matches a different predicted party. Names match after
lower-casing and dropping punctuation and legal suffixes, when equal or when one name's words
all appear in the other. A gold party may list aliases ("General Motors|GM").
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shared.contracts import Stage

SUFFIXES = {"corp", "co", "inc", "ltd", "sa", "ag", "plc", "nv", "spa", "gmbh", "group",
            "holdings"}
#: Stage names in the one stage order (`shared.contracts.Stage`).
STAGES = tuple(stage.value for stage in Stage)


def name_words(name: str) -> frozenset[str]:
    words = re.sub(r"[^\w\s]", " ", name.lower()).split()
    return frozenset(w for w in words if w not in SUFFIXES)


def names_match(gold: str, predicted: str) -> bool:
    """`gold` may be "Canonical|Alias|...": any alias may match."""
    p = name_words(predicted)
    for alias in gold.split("|"):
        g = name_words(alias)
        if g and p and (g <= p or p <= g):
            return True
    return False


def parties_match(gold: list[str], predicted: list[str]) -> bool:
    if len(gold) != len(predicted):
        return False
    return any(all(names_match(g, p) for g, p in zip(gold, perm, strict=True))
               for perm in itertools.permutations(predicted))


@dataclass(frozen=True)
class Event:
    parties: list[str]
    stage: str


@dataclass
class Scores:
    gold: int = 0
    predicted: int = 0
    detected: int = 0
    strict: int = 0
    empty_articles: int = 0
    empty_with_predictions: int = 0
    confusion: Counter = field(default_factory=Counter)  # (gold stage, predicted stage)
    errors: list[dict] = field(default_factory=list)

    @staticmethod
    def prf(tp: int, pred: int, gold: int) -> tuple[float, float, float]:
        p = tp / pred if pred else 0.0
        r = tp / gold if gold else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    @property
    def detection(self) -> tuple[float, float, float]:
        return self.prf(self.detected, self.predicted, self.gold)

    @property
    def strict_prf(self) -> tuple[float, float, float]:
        return self.prf(self.strict, self.predicted, self.gold)

    @property
    def empty_rate(self) -> float:
        return self.empty_with_predictions / self.empty_articles if self.empty_articles else 0.0

    def as_dict(self) -> dict:
        dp, dr, df = self.detection
        sp, sr, sf = self.strict_prf
        return {"gold_events": self.gold, "predicted_events": self.predicted,
                "detection": {"precision": dp, "recall": dr, "f1": df},
                "strict": {"precision": sp, "recall": sr, "f1": sf},
                "no_event_articles": self.empty_articles,
                "no_event_articles_with_predictions": self.empty_with_predictions,
                "no_event_prediction_rate": self.empty_rate,
                "stage_confusion": {f"{g}->{p}": n for (g, p), n in
                                    sorted(self.confusion.items())}}


def _match(gold: list[Event], pred: list[Event], need_stage: bool) -> list[tuple[int, int]]:
    """Greedy one-to-one matching (exact stage matches first)."""
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    order = sorted(range(len(gold)), key=lambda i: -len(gold[i].parties))
    for gi in order:
        candidates = [pi for pi, p in enumerate(pred) if pi not in used
                      and parties_match(gold[gi].parties, p.parties)
                      and (not need_stage or p.stage == gold[gi].stage)]
        if not candidates:
            continue
        best = next((pi for pi in candidates if pred[pi].stage == gold[gi].stage),
                    candidates[0])
        used.add(best)
        pairs.append((gi, best))
    return pairs


def score(gold: dict[str, list[Event]], predicted: dict[str, list[Event]]) -> Scores:
    s = Scores()
    for article_id, gold_events in gold.items():
        pred = predicted.get(article_id, [])
        s.gold += len(gold_events)
        s.predicted += len(pred)
        if not gold_events:
            s.empty_articles += 1
            s.empty_with_predictions += bool(pred)
        detected = _match(gold_events, pred, need_stage=False)
        s.detected += len(detected)
        s.strict += len(_match(gold_events, pred, need_stage=True))
        for gi, pi in detected:
            s.confusion[(gold_events[gi].stage, pred[pi].stage)] += 1
        matched_gold = {gi for gi, _ in detected}
        matched_pred = {pi for _, pi in detected}
        for gi, g in enumerate(gold_events):
            if gi not in matched_gold:
                s.errors.append({"article_id": article_id, "kind": "missed",
                                 "parties": g.parties, "stage": g.stage})
        for pi, p in enumerate(pred):
            if pi not in matched_pred:
                s.errors.append({"article_id": article_id, "kind": "spurious",
                                 "parties": p.parties, "stage": p.stage})
        for gi, pi in detected:
            if gold_events[gi].stage != pred[pi].stage:
                s.errors.append({"article_id": article_id, "kind": "wrong_stage",
                                 "parties": pred[pi].parties,
                                 "stage": f"{gold_events[gi].stage}->{pred[pi].stage}"})
    return s


def load_gold(lines: Iterable[str]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for line in lines:
        if line.strip():
            row = json.loads(line)
            out[row["article_id"]] = [Event(list(e["parties"]), e["stage"])
                                      for e in row["events"]]
    return out


def load_gold_file(path: Path) -> dict[str, list[Event]]:
    with path.open() as fh:
        return load_gold(fh)


@dataclass(frozen=True)
class Calibration:
    """How well predicted probabilities match how often the prediction is right."""

    brier: float
    count: int
    #: 10 equal-width bins: (low, high, count, mean predicted probability, observed rate).
    bins: tuple[tuple[float, float, int, float, float], ...]

    def as_dict(self) -> dict:
        return {"brier": self.brier, "count": self.count,
                "bins": [{"low": lo, "high": hi, "count": n, "mean_confidence": p,
                          "observed": o} for lo, hi, n, p, o in self.bins]}


def calibration(probabilities: list[float], outcomes: list[bool], bins: int = 10
                ) -> Calibration:
    """Brier score and a reliability table of probabilities against 0/1 outcomes."""
    n = len(probabilities)
    brier = sum((p - float(o)) ** 2 for p, o in zip(probabilities, outcomes, strict=True))
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(p, o) for p, o in zip(probabilities, outcomes, strict=True)
                   if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        mean_p = sum(p for p, _ in members) / len(members) if members else 0.0
        observed = sum(o for _, o in members) / len(members) if members else 0.0
        rows.append((lo, hi, len(members), round(mean_p, 4), round(observed, 4)))
    return Calibration(round(brier / n, 4) if n else 0.0, n, tuple(rows))
