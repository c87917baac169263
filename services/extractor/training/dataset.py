"""Candidate party sets of labelled articles, with their gold answers: what the models
learn from. Runs the extractor's own pipeline up to the candidates, so training and
inference see the same features."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from services.extractor.components.extensions import context
from services.extractor.components.partnerships import pool
from services.extractor.evaluation import Event, names_match, parties_match
from services.extractor.pipeline import Extractor
from services.extractor.training.corpus import Labelled

#: Instance labels: the sentence states the gold event / the party set is not a gold event /
#: the set is a gold event but this sentence is not the one the labeller quoted.
STATES, NOT_EVENT, OTHER_SENTENCE = 1, 0, 2


@dataclass(frozen=True)
class Example:
    """One candidate party set of one article."""

    article_id: str
    story: str
    parties: tuple[str, ...]
    instances: tuple[frozenset[str], ...]  # one per candidate sentence
    labels: tuple[int, ...]  # STATES / NOT_EVENT / OTHER_SENTENCE per instance
    stage: str | None  # gold stage when the party set is a gold event, else None
    profile: tuple[float, ...] = ()  # how the whole article names the parties

    @property
    def positive(self) -> bool:
        return self.stage is not None

    @property
    def features(self) -> frozenset[str]:
        return frozenset().union(*self.instances)


def match(parties: Sequence[str], gold: Sequence[Event],
          surfaces: dict[str, set[str]] | None = None) -> int | None:
    """Index of the gold event this party set is, if any. With `surfaces` (name -> the
    forms the article wrote it in) a party also matches through any written form: a
    candidate named by the registry's canonical name is still the event the labeller wrote
    as in the text."""
    for n, event in enumerate(gold):
        if parties_match(event.parties, list(parties)):
            return n
        if surfaces and len(event.parties) == len(parties) and any(
                all(any(names_match(g, form) for form in surfaces.get(p, set()) | {p})
                    for g, p in zip(event.parties, perm, strict=True))
                for perm in itertools.permutations(parties)):
            return n
    return None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def quotes(sentence: str, quote: str) -> bool:
    """Does the labeller's evidence quote come from this sentence (or span it)?"""
    if not quote:
        return True  # no quote recorded: any sentence proposing the set counts
    s, q = _norm(sentence), _norm(quote)
    return q[:60] in s or s[:60] in q or (len(q) > 40 and q[-40:] in s)


def examples(extractor: Extractor, items: Sequence[Labelled], batch: int = 64
             ) -> Iterator[tuple[Labelled, list[Example]]]:
    """Per labelled article, its pooled candidates as examples."""
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        for item, doc in zip(chunk, extractor.parse([i.article for i in chunk]), strict=True):
            out = []
            if doc is not None:
                ctx = context(doc)
                surfaces = doc._.company_surfaces or {}
                for slot in pool(doc._.candidates or [], ctx, extractor.cues):
                    n = match(slot.parties, item.events, surfaces)
                    labels = []
                    for sent in slot.instance_sentences:
                        if n is None:
                            labels.append(NOT_EVENT)
                            continue
                        text = item.article.text[ctx.article_offset(sent.start_char):
                                                 ctx.article_offset(sent.end_char)]
                        quote = item.evidence[n] if n < len(item.evidence) else ""
                        labels.append(STATES if quotes(text, quote) else OTHER_SENTENCE)
                    out.append(Example(item.article.article_id, item.story, slot.parties,
                                       tuple(slot.instances), tuple(labels),
                                       item.events[n].stage if n is not None else None,
                                       slot.profile))
            yield item, out
