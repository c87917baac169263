"""spaCy components of the extractor, registered so a pipeline config can name them.

`radar_companies` finds company mentions the small statistical NER misses: names followed by
a corporate designator ("Halvorsen Pharma AG", "Aurora Airlines"), wire-copy forms
("Chrysler Corp <C>", "<Automobili Lamborghini SpA>"), and later short references to a name
already seen in the article ("Halvorsen"). It drops ORG spans that are datelines, news
outlets or common acronyms.
"""

from __future__ import annotations

import re

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from services.extractor.companies import CompanyRegistry, default_registry

#: Words that end a company name ("... Pharma AG", "... Airlines").
DESIGNATORS = (
    "Inc", "Corp", "Corporation", "Co", "Company", "Ltd", "Limited", "LLC", "LP", "AG",
    "SA", "SE", "NV", "BV", "plc", "PLC", "SpA", "GmbH", "Group", "Holdings", "Holding",
    "Airlines", "Airways", "Air", "Motors", "Motor", "Automotive", "Pharma",
    "Pharmaceuticals", "Biosciences", "Biotech", "Therapeutics", "Semiconductor",
    "Semiconductors", "Electronics", "Devices", "Technologies", "Technology", "Systems",
    "Software", "Networks", "Foundry", "Energy", "Power", "Grid", "Hydrogen", "Oil", "Gas",
    "Petroleum", "Mining", "Steel", "Chemicals", "Logistics", "Markets", "Stores", "Retail",
    "Foods", "Bank", "Capital", "Partners", "Industries", "Manufacturing", "Labs",
    "Laboratories", "Telecom", "Communications", "Media", "Entertainment", "Aerospace",
    "Shipping", "Batteries", "Solar", "Robotics", "Analytics", "Insurance", "Resources",
)
_DESIGNATOR_RE = "|".join(sorted(map(re.escape, DESIGNATORS), key=len, reverse=True))
_NAME_WORD = r"(?:[A-Z][A-Za-z0-9&'.-]*|[A-Z]{2,})"
COMPANY_RE = re.compile(
    rf"(?<![\w])((?:{_NAME_WORD} ){{1,3}}(?:{_DESIGNATOR_RE})\.?)(?![\w])"
    r"|<([A-Z][^<>]{1,60})>"  # <Automobili Lamborghini SpA>
)
DATELINE_RE = re.compile(r"^\s*[A-Z][A-Z .'-]+,(?:[^-\n]{0,40}?)?\s*(?:\([^)]{1,60}\))?\s*-+\s")
NOT_COMPANIES = {"EV", "EVs", "AI", "CEO", "CFO", "IPO", "GDP", "U.S.", "US", "UK", "EU",
                 "R&D", "OEM", "LNG", "SUV", "SUVs", "the Alliance"}
_START_WORDS = {"The", "A", "An", "Under", "Shares", "Analysts", "In", "On", "At", "But",
                "And", "While", "After", "Its", "Their", "Both", "Any", "Demand", "Financial"}


def _strip_leading(name_tokens: list[str]) -> int:
    """How many leading words of a matched name are sentence words, not name words."""
    n = 0
    while n < len(name_tokens) - 1 and name_tokens[n] in _START_WORDS:
        n += 1
    return n


class CompanyFinder:
    def __init__(self, registry: CompanyRegistry) -> None:
        self.registry = registry

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text
        dateline = DATELINE_RE.match(text)
        dateline_end = dateline.end() if dateline else 0
        spans: list[Span] = []
        for ent in doc.ents:
            if ent.label_ != "ORG" or ent.end_char <= dateline_end:
                continue
            if ent.text in NOT_COMPANIES or self.registry.is_non_party(ent.text):
                continue
            spans.append(ent)
        full_names: dict[str, str] = {}
        for match in COMPANY_RE.finditer(text):
            start, end = match.span(1) if match.group(1) else match.span(2)
            words = text[start:end].split(" ")
            skip = _strip_leading(words)
            start += sum(len(w) + 1 for w in words[:skip])
            if start < dateline_end:
                continue
            span = doc.char_span(start, end, label="ORG", alignment_mode="expand")
            if span is None or self.registry.is_non_party(span.text):
                continue
            spans.append(span)
            first = span.text.split(" ")[0]
            if len(span.text.split(" ")) > 1 and first not in DESIGNATORS:
                full_names.setdefault(first, span.text)
        # Short references to names seen in full: "Halvorsen" after "Halvorsen Pharma AG".
        for token in doc:
            if token.text in full_names and token.idx >= dateline_end:
                spans.append(Span(doc, token.i, token.i + 1, label="ORG"))
        kept = [s for s in spans if s.text not in NOT_COMPANIES]
        others = [s for s in doc.ents if s.label_ != "ORG"
                  and not any(s.start < k.end and k.start < s.end for k in kept)]
        doc.ents = filter_spans([*others, *kept])
        doc.user_data["company_full_names"] = full_names
        return doc


@Language.factory("radar_companies", default_config={})
def make_company_finder(nlp: Language, name: str) -> CompanyFinder:
    return CompanyFinder(default_registry())

