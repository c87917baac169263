"""The learned article gate: does this article report a partnership at all?

Most news passes the cue table's gate (one regex of cooperation words: "agreement",
"talks", "market", ...) without reporting any partnership: earnings, commodities,
currencies, takeovers. Sentence splitting and parsing such an article is the extractor's
biggest cost, so before either, a logistic regression over the article's words decides
whether it is worth it.

Features (`features`): lower-cased words and word bigrams of the body and the headline's
words marked apart (the cue table's cues as features too moved the pass rate by about a
point under cross-validation and cost 0.8 ms an article: one search per cue). Weights are
kept per feature string, not hashed: a word the training copy never saw (a modern name, "EV")
weighs nothing instead of borrowing a colliding word's weight, and the artefact reads as the
words the gate learned. The threshold is on the model's probability and was chosen by grouped
cross-validation for a fixed recall of gold events (services/extractor/training/gate.py).

The artefact is gzipped JSON read with plain Python: loading never unpickles, and scoring
needs no numpy (a dict lookup per feature).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

FORMAT = "alliance-radar.article-gate.v1"
#: Words: letters (with inner hyphens and apostrophes), or a number as one token "0".
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*|\d[\d,.]*")


def words(text: str) -> list[str]:
    """Lower-cased word tokens; every number becomes "0" (amounts say nothing of the kind
    of story, and a vocabulary of numbers would be 1987's)."""
    return ["0" if w[0].isdigit() else w for w in _WORD.findall(text.lower())]


def features(title: str, text: str) -> set[str]:
    """What the gate reads of an article: body words and bigrams, headline words ("t:")."""
    body = words(text)
    out = set(body)
    out.update(f"{a} {b}" for a, b in pairwise(body))
    out.update("t:" + w for w in words(title))
    return out


@dataclass
class ArticleGate:
    """A linear model over `features`; an article passes when its probability reaches
    `threshold`."""

    version: str
    weights: dict[str, float]
    bias: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, feats: Iterable[str]) -> float:
        """The model's log-odds that the article reports a partnership."""
        get = self.weights.get
        return self.bias + sum(get(f, 0.0) for f in feats)

    def probability(self, title: str, text: str) -> float:
        z = self.score(features(title, text))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def passes(self, title: str, text: str) -> bool:
        return self.probability(title, text) >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": self.version, "bias": self.bias,
                "threshold": self.threshold, "weights": self.weights, "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArticleGate:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an article gate ({data.get('format')!r}, want {FORMAT!r})")
        return cls(version=data["version"], weights=dict(data["weights"]),
                   bias=float(data["bias"]), threshold=float(data["threshold"]),
                   meta=data.get("meta", {}))

    def save(self, path: Path) -> None:
        body = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        # mtime=0: the same model gives the same bytes.
        path.write_bytes(gzip.compress(body, compresslevel=9, mtime=0))

    @classmethod
    def load(cls, path: Path) -> ArticleGate:
        return cls.from_json(json.loads(gzip.decompress(path.read_bytes())))


def default_gate_path() -> Path:
    return Path(str(resources.files("services.extractor").joinpath("data",
                                                                   "article-gate.json.gz")))


def load_gate(path: str | Path | None = None) -> ArticleGate:
    """The gate at `path` (default: the shipped one), loaded once per process."""
    return _load_gate(Path(path) if path else default_gate_path())


@cache
def _load_gate(path: Path) -> ArticleGate:
    return ArticleGate.load(path)
