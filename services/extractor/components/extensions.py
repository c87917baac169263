"""The Doc and Span extensions the extractor's components read and write.

A Doc here is one article's *candidate windows* (the stretches worth parsing), joined by
paragraph breaks; `doc._.article` says where each window sits in the article and carries
what the components need to know about the whole article (its date, title, full names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spacy.tokens import Doc, Span


@dataclass(frozen=True)
class Segment:
    """Characters [doc_start, doc_start + length) of the doc are article characters
    [article_start, article_start + length)."""

    doc_start: int
    article_start: int
    length: int


@dataclass(frozen=True)
class ArticleContext:
    """What the components know about the article a doc was cut from."""

    article_id: str = ""
    title: str = ""
    published: str | None = None  # ISO day; names are resolved as of this date
    segments: tuple[Segment, ...] = ()
    #: First word -> full name, for names written in full with a designator anywhere in the
    #: article ("Halvorsen" -> "Halvorsen Pharma AG").
    full_names: dict[str, str] = field(default_factory=dict)
    #: Upper-cased word tuples of names written with a ticker ("TEKELEC <TKLC>").
    ticker_names: frozenset[tuple[str, ...]] = frozenset()
    #: Names the wire wrote in angle brackets ("<Microamerica>", "<Seeds of Tomorrow Inc>"):
    #: Reuters marks private companies so; the brackets are gone from the normalised text.
    bracketed: frozenset[str] = frozenset()
    #: (article offset, canonical name) of companies the article names, found without
    #: parsing: the history references ("the two companies") resolve against.
    named: tuple[tuple[int, str], ...] = ()
    #: unit -> parent, where the text says so ("Georgia Power, a unit of Southern Co").
    units: dict[str, str] = field(default_factory=dict)

    def article_offset(self, doc_offset: int) -> int:
        """Article character offset of a doc character offset."""
        for seg in self.segments:
            if seg.doc_start <= doc_offset <= seg.doc_start + seg.length:
                return seg.article_start + doc_offset - seg.doc_start
        return doc_offset

    def segment_of(self, doc_offset: int) -> int:
        """Index of the window (segment) a doc character offset lies in (-1: none)."""
        return next((n for n, seg in enumerate(self.segments)
                     if seg.doc_start <= doc_offset <= seg.doc_start + seg.length), -1)

    def named_before(self, article_offset: int) -> list[str]:
        return [name for at, name in self.named if at < article_offset]


def declare() -> None:
    """Declare every extension once (idempotent: safe on re-import)."""
    for name, default in (("article", None), ("candidates", None), ("partnerships", None),
                          ("scored_sets", None), ("company_surfaces", None)):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=default)
    for name, default in (("company", None), ("company_known", False), ("company_kind", "")):
        if not Span.has_extension(name):
            Span.set_extension(name, default=default)


def context(doc: Doc) -> ArticleContext:
    """The doc's article context; a doc made without one (a unit test's plain text) is its
    own article."""
    ctx = doc._.article
    if ctx is None:
        ctx = ArticleContext(segments=(Segment(0, 0, len(doc.text)),))
        doc._.article = ctx
    return ctx


declare()
