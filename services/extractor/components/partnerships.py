"""`radar_partnerships`: the trained models decide which candidates are partnerships.

Each candidate sentence of a party set is scored by the sentence model (its own features
plus what the article says of the set: the headline's cues, how many sentences propose it);
the article model scores everything the article's candidate sentences show together; the
party-set model reads both (the set's best, second and mean sentence score, how it ranks
against the article's other sets, the article score: `model.SET_FEATURES`), and its score is
mapped to a calibrated probability. The stage model reads the set's best sentence: the stage
is what the sentence stating the partnership says. Sets at or above the threshold are kept;
a pair inside a kept larger set at least as probable is part of that set, not a second
event.

Writes `doc._.partnerships`: a list of `Partnership`, most probable first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc, Span

from services.extractor.components.candidates import Candidate, bucket, same_company
from services.extractor.components.extensions import ArticleContext, context
from services.extractor.cues import CueTable
from services.extractor.model import PartnershipModel


@dataclass
class PooledCandidate:
    """Every candidate sentence of one party set in one article."""

    parties: tuple[str, ...]
    sentences: list[Span] = field(default_factory=list)
    #: One feature set per candidate sentence (with the article-level features added),
    #: and that sentence.
    instances: list[frozenset[str]] = field(default_factory=list)
    instance_sentences: list[Span] = field(default_factory=list)
    #: How the whole article names the parties (`party_profile`): what the party-set model
    #: reads beside the sentence scores.
    profile: tuple[float, ...] = ()

    @property
    def features(self) -> frozenset[str]:
        """All sentences' features together (what the stage model reads)."""
        return frozenset().union(*self.instances) if self.instances else frozenset()


@dataclass
class Partnership:
    parties: tuple[str, ...]
    stage: str
    probability: float
    stage_probability: float
    sentences: list[Span]
    #: The party-set model's raw score: orders sets the calibration puts on one step.
    score: float = 0.0


def party_profile(parties: Sequence[str], named: Sequence[tuple[int, str]],
                  seen: dict[str, tuple[int, int]] | None = None) -> tuple[float, ...]:
    """How the whole article names a party set, from the companies found without parsing
    (`ArticleContext.named`, in text order), as `model.PROFILE_FEATURES`: the fewest and
    the mean mentions of a party, the share of parties never named so, the latest rank at
    which a party is first named among the article's companies, and how many companies the
    article names. A party the story keeps returning to is more likely a partner than one
    named once in passing. `seen`: party -> (mentions, first rank), shared by one article's
    sets so that each party is looked up once."""
    times = Counter(name for _, name in named)
    order = list(times)  # distinct names, in the order first named
    seen = {} if seen is None else seen
    counts, ranks = [], []
    for party in parties:
        if party not in seen:
            mine = [k for k, name in enumerate(order)
                    if name == party or same_company(name, party)]
            seen[party] = (sum(times[order[k]] for k in mine), min(mine, default=len(order)))
        counts.append(seen[party][0])
        ranks.append(seen[party][1])
    return (float(np.log1p(min(counts))), float(np.log1p(np.mean(counts))),
            sum(1 for c in counts if c == 0) / len(parties), float(np.log1p(max(ranks))),
            float(np.log1p(len(order))))


def pool(candidates: Sequence[Candidate], ctx: ArticleContext, cues: CueTable
         ) -> list[PooledCandidate]:
    """Group candidates by party set and add the article-level features to each instance.
    Shared by training and inference, so both see exactly the same features."""
    grouped: dict[tuple[str, ...], list[Candidate]] = {}
    for cand in candidates:
        grouped.setdefault(cand.parties, []).append(cand)
    title = ctx.title.upper()
    headline = {f"h:{c}" for c in cues.fired(ctx.title)} if ctx.title else set()
    groups = [set(p) for p in grouped if len(p) > 2]
    seen: dict[str, tuple[int, int]] = {}
    out = []
    for parties, cands in grouped.items():
        sentences: list[Span] = []
        for cand in cands:
            if all(s.start != cand.sentence.start for s in sentences):
                sentences.append(cand.sentence)
        in_title = sum(1 for p in parties if p.split()[0].upper() in title)
        article = headline | {f"t:{min(in_title, 2)}",
                              f"ns:{bucket(len(sentences), (1, 2, 3))}"}
        if len(parties) == 2 and any(set(parties) < g for g in groups):
            article.add("in_group")
        out.append(PooledCandidate(parties, sorted(sentences, key=lambda s: s.start),
                                   [frozenset(c.features | article) for c in cands],
                                   [c.sentence for c in cands],
                                   party_profile(parties, ctx.named, seen)))
    return out


def decide(pooled: Sequence[PooledCandidate], model: PartnershipModel, threshold: float
           ) -> list[Partnership]:
    """Score pooled candidates; keep those at or above `threshold` (the sets after the
    article's most probable one also at or above the model's `other_threshold`), drop pairs
    that a kept larger set at least as probable contains."""
    return select(score_sets(pooled, model), threshold, model.other_threshold)


def score_sets(pooled: Sequence[PooledCandidate], model: PartnershipModel
               ) -> list[Partnership]:
    """Every candidate party set with its calibrated probability and stage."""
    if not pooled:
        return []
    raw, stating = model.set_scores([(p.parties, p.instances, p.profile) for p in pooled])
    probabilities = model.calibrate(raw)
    # The stage is what the sentence stating the partnership says.
    stage_probs = model.stages(stating)
    found = []
    for slot, score, prob, sp in zip(pooled, raw, probabilities, stage_probs, strict=True):
        top = int(sp.argmax())
        found.append(Partnership(slot.parties, model.stage_classes[top], float(prob),
                                 float(sp[top]), slot.sentences, float(score)))
    return found


def select(found: Sequence[Partnership], threshold: float,
           other_threshold: float | None = None) -> list[Partnership]:
    """Those at or above `threshold`, without pairs inside a kept larger set at least as
    probable ("X, Y and Z formed ..." is one three-party event, not also X-Y).

    `other_threshold`: what every set but the article's most probable one (by probability,
    then raw score, then order) must reach as well. A wire article mostly reports one
    partnership; its other sets over the threshold are mostly the same event under another
    name or a neighbouring company (cross-validation: a second set at 0.5-0.7 is a gold event
    in 1 of 31), so a second event must be clearer than the first."""
    kept = [f for f in found if f.probability >= threshold]
    if other_threshold is not None and len(kept) > 1:
        first = max(range(len(kept)), key=lambda k: (kept[k].probability, kept[k].score, -k))
        kept = [f for k, f in enumerate(kept) if k == first or f.probability >= other_threshold]
    kept = [f for f in kept if not any(
        len(o.parties) > len(f.parties) and set(f.parties) < set(o.parties)
        and o.probability >= f.probability for o in kept)]
    return sorted(kept, key=lambda f: (-f.probability, f.parties))


class PartnershipDecider:
    def __init__(self, model: PartnershipModel, cues: CueTable, threshold: float | None
                 ) -> None:
        self.model = model
        self.cues = cues
        self.threshold = model.threshold if threshold is None else threshold

    def select(self, found: Sequence[Partnership]) -> list[Partnership]:
        """The partnerships kept of an article's scored sets (`score_sets`)."""
        return select(found, self.threshold, self.model.other_threshold)

    def __call__(self, doc: Doc) -> Doc:
        pooled = pool(doc._.candidates or [], context(doc), self.cues)
        doc._.scored_sets = score_sets(pooled, self.model)
        doc._.partnerships = self.select(doc._.scored_sets)
        return doc


@Language.factory(
    "radar_partnerships",
    default_config={"model": {"@misc": "radar.partnership_model.v1", "path": None},
                    "cues": {"@misc": "radar.cue_table.v1", "path": None},
                    "threshold": None})
def make_partnership_decider(nlp: Language, name: str, model: PartnershipModel,
                             cues: CueTable, threshold: float | None) -> PartnershipDecider:
    """`threshold`: minimum calibrated probability of a kept partnership (None: the one
    chosen at training time by cross-validation)."""
    return PartnershipDecider(model, cues, threshold)
