"""`radar_companies`: company mentions, with their canonical names as of the article's date.

Beyond the statistical NER: names followed by a corporate designator ("Halvorsen Pharma AG"),
wire-copy forms ("Chrysler Corp <C>", "<Automobili Lamborghini SpA>"), names written with a
ticker anywhere in the article, and later short references to a name seen in full
("Halvorsen"). Datelines, outlets, public bodies and places are dropped; units and brands
resolve to the owner the text or the registry names ("Chrysler's Dodge brand", "a Thyssen
unit", "its Air Europe subsidiary").

Writes `doc.spans["companies"]` (every mention, in order) with `span._.company` (canonical
name), `span._.company_known` (registry, designator or ticker: surely a company) and
`span._.company_kind` (how it was found), and the ORG entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from services.extractor.companies import CompanyRegistry, clean_mention
from services.extractor.components.extensions import ArticleContext, context
from services.extractor.cues import CueTable, NameRules

# A name word; a "." only inside it ("U.S."), never the sentence's full stop.
_NAME_WORD = r"(?:[A-Z](?:[A-Za-z0-9&'-]|\.(?=\S))*|[A-Z]{2,})"
TICKER_AFTER_RE = re.compile(r"^\s*<[A-Z0-9.]{1,10}>")
#: "TEKELEC <TKLC> SETS PACT", "Chrysler Corp <C>": a name with a stock ticker is a company.
TICKER_NAME_RE = re.compile(r"([A-Za-z][\w&'.-]*(?: [A-Za-z][\w&'.-]*){0,3}) <[A-Z0-9.]{1,10}>")
#: "Rutherford, N.J.", "Houston-based": the name before is a place.
_PLACE_AFTER = re.compile(
    r"^(?:,\s*(?!(?:Inc|Corp|Co|Ltd|Cos|Plc|Bhd|Ltda|Lda)\b)"  # ", Inc." is no place
    r"[A-Z][a-z]{0,4}\.(?:[A-Z]\.)?(?:-based\b|[\s,])"
    r"|-based\b)")
#: Which way of finding a span says most surely that it is a company.
_KIND_RANK = {"designator": 0, "ticker": 1, "ner": 2, "described": 3, "short": 4}
#: Entity types a tagger gives no company name (a described name is kept unless so tagged).
_NOT_NAME_ENTS = {"DATE", "TIME", "MONEY", "PERCENT", "CARDINAL", "ORDINAL", "QUANTITY",
                  "GPE", "LOC"}
DATELINE_RE = re.compile(
    r"^\s*(?:[A-Z][A-Z .'-]+(?:,[^-\n]{0,40}?)?\s*(?:\([^)]{1,60}\))?|\([^)]{1,40}\))\s*-+\s")


#: An initial inside a name ("C. Itoh", "E.B. Michaels"): only before another capitalised word.
_INITIALS = r"(?:[A-Z]\.)+(?= [A-Z])"
#: A bracketed word inside a name ("Cheung Kong (Holdings) Ltd").
_PAREN_WORD = r"\([A-Z][A-Za-z]+\)"


def company_pattern(names: NameRules) -> re.Pattern[str]:
    """Up to four capitalised words (joined by the name connectors, "Minas de Almaden y
    Arrayanes S.A.") ending in a designator or two ("C. Itoh and Co Ltd"), or a bracketed
    wire name."""
    designators = "|".join(sorted(map(re.escape, names.designators), key=len, reverse=True))
    connectors = "|".join(map(re.escape, names.name_connectors)) or "(?!)"
    word = rf"(?:{_NAME_WORD}|{_INITIALS}|{_PAREN_WORD})"
    return re.compile(
        rf"(?<![\w])((?:{word} (?:(?:{connectors}) )?){{1,3}}"
        rf"(?:(?:and|&) (?=Co\b|Cos\b|Company\b))?"
        rf"(?:{designators})(?:\.? (?:{designators}))?\.?)(?![\w])"
        r"|<([A-Z][^<>\n]{1,60})>")


def described_pattern(names: NameRules) -> re.Pattern[str]:
    """A description noun and the names right after it ("the French group Jeumont-Schneider",
    "clearing agencies Cedel and Euroclear"): group 1 holds the names."""
    nouns = "|".join(sorted(map(re.escape, names.descriptor_nouns), key=len, reverse=True))
    connectors = "|".join(map(re.escape, names.name_connectors)) or "(?!)"
    name = rf"{_NAME_WORD}(?:(?: (?:{connectors}))? {_NAME_WORD}){{0,3}}"
    return re.compile(rf"(?<![\w-])(?:{nouns}) ({name}(?:(?:,| and|, and) {name}){{0,3}})")


def described_names(text: str, pattern: re.Pattern[str], names: NameRules
                    ) -> list[tuple[int, int]]:
    """Offsets of the names a description noun introduces (see `described_pattern`)."""
    out = []
    for match in pattern.finditer(text):
        at = match.start(1)
        for part in re.split(r"(,? and |, )", match.group(1)):
            if re.fullmatch(r",? and |, ", part):
                at += len(part)
                continue
            words = part.split(" ")
            keep: list[str] = []
            for w in words:
                if w in names.descriptor_stop or w in names.start_words:
                    break
                keep.append(w)
            while keep and keep[-1] in names.name_connectors:
                keep.pop()
            name = " ".join(keep)
            if len(name) >= 2 and not (name in names.not_companies or names.is_body(name)):
                out.append((at, at + len(name)))
            at += len(part)
    return out


def _strip_leading(words: list[str], names: NameRules) -> int:
    """How many leading words of a matched name are sentence words or a possessor
    ("Taiwan's Lunaris Memory Corp"), not name words."""
    n = 0
    while n < len(words) - 1 and (words[n] in names.start_words
                                  or words[n].endswith(("'s", "’s"))):
        n += 1
    return n


def full_company_names(text: str, pattern: re.Pattern[str], names: NameRules,
                       start: int = 0) -> dict[str, str]:
    """First word -> full name, for names written in full with a designator ("Halvorsen" ->
    "Halvorsen Pharma AG"), so later short references resolve to one company."""
    found: dict[str, str] = {}
    for match in pattern.finditer(text):
        if match.start() < start or not match.group(1):
            continue
        words = match.group(1).split(" ")
        words = words[_strip_leading(words, names):]
        if len(words) > 1 and words[0] not in names.designators \
                and words[0] not in names.start_words \
                and not re.fullmatch(r"(?:[A-Z]\.)+|\(.*\)", words[0]):
            found.setdefault(words[0], " ".join(words))
    return found


#: "<Microamerica>", "<Kamine Engineering and Mechanical Contracting": a bracketed wire name
#: (not a ticker: it has a lower-case letter), also broken over a line.
_BRACKETED = re.compile(r"<([A-Z](?:[^<>\n]|\n(?!\n)){1,60})(?:>|\s*<)")


def bracketed_names(texts: Iterable[str]) -> frozenset[str]:
    """Names written in angle brackets, the wire's mark of a (private) company; tickers
    ("<ACHV>", "<SIEG.F>") are not names."""
    out = set()
    for text in texts:
        for match in _BRACKETED.finditer(text):
            name = re.sub(r"\s+", " ", match.group(1)).strip(" ,.")
            if re.search(r"[a-z]", name) and len(name) >= 3:
                out.add(name)
    return frozenset(out)


def ticker_names(texts: Iterable[str], names: NameRules) -> frozenset[tuple[str, ...]]:
    """Upper-cased word tuples of names written with a ticker ("TEKELEC <TKLC>")."""
    out: set[tuple[str, ...]] = set()
    for text in texts:
        for match in TICKER_NAME_RE.finditer(text):
            words = match.group(1).upper().split()
            # keep the name part nearest the ticker: "HITECH <THEX>", "ADOBE SYSTEMS <ADBE>"
            tail: list[str] = []
            for w in reversed(words):
                if w in names.headline_stop:
                    break
                tail.insert(0, w)
            if tail:
                out.add(tuple(tail[-3:]))
                out.add(tuple(tail[:1]))
    return frozenset(out)


class CompanyFinder:
    def __init__(self, registry: CompanyRegistry, cues: CueTable) -> None:
        self.registry = registry
        self.names = cues.names
        self.pattern = company_pattern(cues.names)
        self.described = described_pattern(cues.names)

    def __call__(self, doc: Doc) -> Doc:
        ctx = context(doc)
        text = doc.text
        dateline = DATELINE_RE.match(text)
        dateline_end = dateline.end() if dateline else 0
        spans: list[Span] = []
        kinds: dict[tuple[int, int], str] = {}  # how each span was found, surest first

        def add(span: Span | None, kind: str) -> None:
            if span is not None:
                spans.append(span)
                key = (span.start, span.end)
                if _KIND_RANK[kind] < _KIND_RANK.get(kinds.get(key, ""), 9):
                    kinds[key] = kind

        for ent in doc.ents:
            if ent.label_ == "ORG" and ent.end_char > dateline_end:
                add(Span(doc, ent.start, ent.end, label="ORG"), "ner")
        for match in self.pattern.finditer(text):
            start, end = match.span(1) if match.group(1) else match.span(2)
            words = text[start:end].split(" ")
            start += sum(len(w) + 1 for w in words[:_strip_leading(words, self.names)])
            if start < dateline_end:
                continue
            add(doc.char_span(start, end, label="ORG", alignment_mode="expand"), "designator")
        for start, end in described_names(text, self.described, self.names):
            if start < dateline_end:
                continue
            span = doc.char_span(start, end, label="ORG", alignment_mode="expand")
            if span is not None and span[0].ent_type_ not in _NOT_NAME_ENTS:
                add(span, "described")
        for span in self._ticker_named(doc, ctx.ticker_names, dateline_end):
            add(span, "ticker")
        for name in ctx.bracketed:
            for match in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
                if match.start() >= dateline_end:
                    add(doc.char_span(match.start(), match.end(), label="ORG",
                                      alignment_mode="expand"), "designator")
        full_names = ctx.full_names or full_company_names(text, self.pattern, self.names,
                                                          dateline_end)
        for token in doc:
            if token.text in full_names and token.idx >= dateline_end:
                add(Span(doc, token.i, token.i + 1, label="ORG"), "short")
        kept = [s for s in filter_spans(spans) if self._keep(s)]
        others = [s for s in doc.ents if s.label_ != "ORG"
                  and not any(s.start < k.end and k.start < s.end for k in kept)]
        doc.ents = filter_spans([*others, *kept])
        mentions = []
        for span in sorted(kept, key=lambda s: s.start):
            kind = kinds.get((span.start, span.end), "ner")
            name, known = self._resolve(span, kind, mentions, full_names, ctx)
            if name is None:
                continue
            span._.company, span._.company_known, span._.company_kind = name, known, kind
            mentions.append(span)
        doc.spans["companies"] = mentions
        return doc

    def _keep(self, span: Span) -> bool:
        text = span.text
        # "Reuters Holdings Plc": an outlet written with a legal form is its own company.
        outlet = self.registry.is_non_party(text) and not self.names.has_legal_form(text)
        return not (text in self.names.not_companies or outlet or self.names.is_body(text))

    @staticmethod
    def _ticker_named(doc: Doc, names: frozenset[tuple[str, ...]],
                      dateline_end: int) -> list[Span]:
        """Mentions of names that carry a ticker anywhere in the article or its headline."""
        if not names:
            return []
        out = []
        upper = [t.text.upper() for t in doc]
        for i, token in enumerate(doc):
            if token.idx < dateline_end or not token.text[:1].isupper():
                continue
            for name in names:
                if tuple(upper[i:i + len(name)]) == name:
                    out.append(Span(doc, i, i + len(name), label="ORG"))
        return out

    def _resolve(self, span: Span, kind: str, earlier: list[Span],
                 full_names: dict[str, str], ctx: ArticleContext) -> tuple[str | None, bool]:
        when = ctx.published
        owner = self._owner_from_context(span, when, ctx) or self._owner_from_unit(
            span, earlier, when)
        full = self._full_name(span.text, full_names)
        name = owner or self.registry.canonicalize(full, when)
        if name is None and self.names.has_legal_form(full):
            name = clean_mention(full)  # "Reuters Holdings Plc", "Systems Industries Inc"
        if name is None or len(name) < 2 or self.names.is_body(full if owner is None else name):
            return None, False
        if " " not in name and (name in self.names.designators
                                or name.lower() in self.names.generic_words):
            return None, False  # "Air", "National", "Chemicals": a word, not a name
        if name.split()[-1].lower() in ("firm", "firms", "company", "companies", "concern"):
            return None, False  # "U.S. Firm": a description, not a name
        if _PLACE_AFTER.match(span.doc.text[span.end_char:span.end_char + 12]):
            return None, False  # "a Rutherford, N.J.-based company": a place
        doc = span.doc
        known = (owner is not None or self.registry.is_known(full, when)
                 or tuple(span.text.upper().split()) in ctx.ticker_names
                 or bool(self.pattern.fullmatch(full.strip()))
                 or bool(TICKER_AFTER_RE.match(doc.text[span.end_char:span.end_char + 14]))
                 or span.text in full_names or kind in ("designator", "ticker"))
        return name, known

    @staticmethod
    def _full_name(text: str, full_names: dict[str, str]) -> str:
        """The article's full form of a name: "AW Computer" -> "AW Computer Systems Inc"."""
        first = text.split(" ")[0]
        full = full_names.get(first)
        if full and full.startswith(text) and len(full) > len(text):
            return full
        return full_names.get(text, text)

    def _owner_from_unit(self, span: Span, earlier: list[Span], when: str | None
                         ) -> str | None:
        """"Coca-Cola Co's Entertainment ... unit", "its <Air Europe> subsidiary", "through
        its subsidiary, Westlink Inc": a unit resolves to its parent."""
        if "'s " in span.text:
            possessor = span.text.split("'s ")[0]
            owner = self.registry.canonicalize(possessor, when)
            if owner and not self.registry.is_non_party(possessor):
                return owner
        doc = span.doc
        after = doc[span.end:span.end + 1].text.lower()
        before = doc[max(span.start - 3, 0):span.start].text.lower()
        units = self.names.unit_words
        if earlier and (("its" in before.split() and after in units)
                        or any(before.rstrip(", ").endswith(f"its {w}") for w in units)):
            return earlier[-1]._.company
        return None

    def _owner_from_context(self, span: Span, when: str | None, ctx: ArticleContext
                            ) -> str | None:
        """A brand or unit resolves to its owner when the article names the owner (the
        guide's rule): "Chrysler's Dodge brand", "a Thyssen unit"."""
        owner = self.registry.brand_owner(span.text, when)
        if owner and owner in {name for _, name in ctx.named}:
            return owner
        before = span.doc[max(span.start - 3, 0):span.start]
        if len(before) >= 2 and before[-1].text in ("'s", "’s") and before[-2].ent_type_:
            after = span.doc[span.end:span.end + 1]
            if after.text.lower() in self.names.unit_words:
                return self.registry.canonicalize(span.doc[before[-2].i:before[-1].i].text,
                                                  when)
        return None


@Language.factory(
    "radar_companies",
    default_config={"registry": {"@misc": "radar.company_registry.v1", "path": None},
                    "cues": {"@misc": "radar.cue_table.v1", "path": None}})
def make_company_finder(nlp: Language, name: str, registry: CompanyRegistry,
                        cues: CueTable) -> CompanyFinder:
    return CompanyFinder(registry, cues)
