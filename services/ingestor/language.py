"""Language of an article, detected offline with py3langid's model (97 languages).

Only a confident detection can skip an article: short texts full of company names are often
unsure, and dropping real news on a weak guess is worse than passing one foreign article.

py3langid finds the byte n-gram features of a text by walking its automaton one byte at a
time in Python. `VectorIdentifier` finds
the same features with numpy: the automaton is an Aho-Corasick machine, so its state after
any byte depends only on the last `depth` bytes (its deepest state; 6 for the bundled model),
and `depth` vectorised steps over the whole text give every position's state at once. The
scores are computed from the same features in the same order, so the detection is identical
(a unit test compares both on the Reuters TRAIN articles the benchmark feeds). Detection
then costs 0.14 instead of 0.19 ms CPU per Reuters article; most of the rest is the model's
scoring (its float16 table is widened per call; a float32 copy would save about 0.1 ms more
for 57 MB of memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import numpy as np
from py3langid.langid import MODEL_FILE, RAW_FLOOR, LanguageIdentifier

#: Detection reads the lead only: it says enough, and it bounds the cost (~0.5 ms an article).
SAMPLE_CHARS = 1500


@dataclass(frozen=True)
class Detection:
    language: str  # ISO 639-1
    confidence: float  # normalised probability, 0..1


@dataclass(frozen=True)
class LanguageVerdict:
    language: str  # what the article is labelled with
    allowed: bool
    detection: Detection


class VectorIdentifier(LanguageIdentifier):
    """py3langid's identifier with the automaton walk done in numpy (see the module doc)."""

    @cached_property
    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Transitions (the model's own uint32 array, 39 MB: not copied), each state's row
        offset into them, each state's feature (-1: none)."""
        return (np.asarray(self.tk_nextmove),
                np.asarray(self.tk_row, dtype=np.int64) << 8,
                np.asarray(self.tk_output, dtype=np.int64))

    @cached_property
    def depth(self) -> int:
        """The most bytes any state stands for: its distance from the start state (a
        breadth-first walk over every byte, a few thousand states at a time so that the
        walk needs a few MB)."""
        nextmove, rowbase, _ = self._tables
        seen = np.zeros(len(rowbase), dtype=bool)
        seen[0] = True
        frontier, depth, step = np.array([0]), 0, 4096
        every_byte = np.arange(256)
        while True:
            reached = np.unique(np.concatenate([
                np.unique(nextmove[rowbase[frontier[i:i + step]][:, None] + every_byte])
                for i in range(0, len(frontier), step)]))
            frontier = reached[~seen[reached]]
            if not len(frontier):
                return depth
            seen[frontier] = True
            depth += 1

    def features(self, data: bytes) -> np.ndarray:
        """The feature index at every byte where the walk emits one, in text order (what
        py3langid's `visit_counts` counts)."""
        nextmove, rowbase, output = self._tables
        codes = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        states = np.zeros(len(codes), dtype=np.int64)
        # The state at byte i is the walk from the start over bytes i-depth+1 .. i: the
        # step with the byte j places back, for every position at once.
        for back in range(min(self.depth, len(codes)) - 1, -1, -1):
            tail = states[back:]
            states[back:] = nextmove[rowbase[tail] + codes[:len(codes) - back]]
        found = output[states]
        return found[found >= 0]

    def _raw_score(self, text: Any) -> np.ndarray:
        found = self.features(text)
        if len(found):
            # Features in order of first appearance with their counts: the order of
            # py3langid's Counter, so the float32 sums below are the very same.
            unique, first, counts = np.unique(found, return_index=True, return_counts=True)
            order = np.argsort(first, kind="stable")
            scores: np.ndarray = (np.log1p(counts[order].astype(np.float32))
                                  @ self.nb_ptc[unique[order]] + self.nb_pc)
            return scores
        fill = 0.0 if self._norm_probs else RAW_FLOOR
        return np.full(len(self.nb_classes), fill, dtype=np.float32)


@cache
def _identifier() -> LanguageIdentifier:
    return VectorIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str) -> Detection:
    language, confidence = _identifier().classify(text[:SAMPLE_CHARS])
    return Detection(str(language), float(confidence))


@dataclass(frozen=True)
class LanguagePolicy:
    """Which languages are published. `allowed=None` publishes every language."""

    allowed: frozenset[str] | None = frozenset({"en"})
    min_confidence: float = 0.9

    def judge(self, text: str, declared: str | None = None) -> LanguageVerdict:
        """A confident detection decides. Otherwise the declared language (item, feed) labels
        and decides; with none declared the article is kept under the detector's guess."""
        found = detect(text)
        if found.confidence >= self.min_confidence:
            language = found.language
        elif declared:
            language = primary_tag(declared)
        else:
            return LanguageVerdict(found.language, True, found)
        return LanguageVerdict(language, self.allowed is None or language in self.allowed,
                               found)


def primary_tag(tag: str) -> str:
    """`en-US` / `en_gb` -> `en`."""
    return tag.replace("_", "-").split("-")[0].strip().lower() or tag
