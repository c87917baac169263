"""Company names: one canonical name per company, across articles.

The canonical name is the key of the alliance view, so it must be deterministic: the same
mention always maps to the same string. Known companies come from `data/companies.json`
(aliases, brands and units map to their owner); every other name is normalised by rule
(wire-copy tickers, legal suffixes, punctuation).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from cleanco import basename as cleanco_basename

LEGAL_SUFFIXES = (
    "co", "corp", "corporation", "company", "inc", "incorporated", "ltd", "limited", "llc",
    "lp", "llp", "sa", "ag", "plc", "nv", "bv", "spa", "gmbh", "kgaa", "se", "ab", "asa",
    "oy", "oyj", "kk", "pty", "group", "holdings", "holding", "cos", "companies",
)
#: A name made only of these words names no company ("Industries", "Group Inc").
GENERIC_WORDS = frozenset(LEGAL_SUFFIXES) | {"industries", "international", "enterprises",
                                             "systems", "technologies", "company",
                                             "the", "and", "of"}
#: Trailing words that do not change which company a name means ("Fujitsu America").
GENERIC_TRAILING = GENERIC_WORDS | {"motor", "motors", "electric", "electronics", "industrial",
                                    "manufacturing", "usa", "america", "americas", "europe",
                                    "japan", "uk", "corporation", "worldwide", "global"}
_SUFFIX_RE = re.compile(r"(?:[\s,]+(?:" + "|".join(LEGAL_SUFFIXES) + r")\.?)+$", re.I)
_TICKER_RE = re.compile(r"\s*<[^<>]{1,12}>\s*$")  # "Chrysler Corp <C>"
_BRACKETS_RE = re.compile(r"^<(.+)>$")  # "<Automobili Lamborghini SpA>"
_POSSESSIVE_RE = re.compile(r"(?:'s|’s|')$")
_SPACE_RE = re.compile(r"\s+")
_DOTTED_RE = re.compile(r"\b(?:[A-Za-z]\.){2,}")


def clean_mention(text: str) -> str:
    """Strip wire-copy decorations, possessives, a leading 'the' and legal suffixes."""
    name = _SPACE_RE.sub(" ", text).strip(" \t\n,;:.\"'()")
    bracket = _BRACKETS_RE.match(name)
    if bracket:
        name = bracket.group(1)
    name = _TICKER_RE.sub("", name)
    name = re.sub(r"^[A-Z0-9.]{1,10}>\s*", "", name)  # "TEX> Continental": a ticker tail
    name = re.sub(r"\s+(?:and|&|of|in|at|for)$", "", name).strip("<> ")
    name = _DOTTED_RE.sub(lambda m: m.group(0).replace(".", ""), name)  # "A.G." -> "AG"
    name = _POSSESSIVE_RE.sub("", name).strip()
    name = re.sub(r"^(?:the|The)\s+", "", name)
    name = re.sub(r"^[A-Z][\w.]*-based\s+", "", name)  # "Paris-based Alsthom"
    stripped = _legal_basename(name)
    stripped = _SUFFIX_RE.sub("", stripped).strip(" ,.")
    return stripped or name


def _legal_basename(name: str) -> str:
    """Drop legal forms of any country ("Co Ltd", "Pty Ltd", "Oyj", "S.p.A.") with cleanco,
    repeatedly, since it strips one at a time."""
    for _ in range(4):
        shorter = cleanco_basename(name).strip(" ,.")
        if not shorter or shorter == name:
            break
        name = shorter
    return name


def name_key(text: str) -> str:
    """Case- and punctuation-insensitive lookup key."""
    return re.sub(r"[^a-z0-9&]+", " ", clean_mention(text).lower()).strip()


@dataclass
class CompanyRegistry:
    """Canonical names with aliases, brands and units; non-party names (outlets, bodies)."""

    canonical: dict[str, str] = field(default_factory=dict)  # key -> canonical name
    brands: dict[str, str] = field(default_factory=dict)  # brand key -> owner
    non_parties: set[str] = field(default_factory=set)
    surface_forms: set[str] = field(default_factory=set)  # as written, for the EntityRuler

    @classmethod
    def from_data(cls, companies: dict, non_parties: list[str]) -> CompanyRegistry:
        reg = cls()
        for name, info in companies.items():
            reg.canonical[name_key(name)] = name
            reg.surface_forms.add(name)
            for alias in info.get("aliases", []):
                reg.canonical[name_key(alias)] = name
                reg.surface_forms.add(alias)
            for brand in info.get("brands", []):
                reg.brands[name_key(brand)] = name
                reg.surface_forms.add(brand)
        reg.non_parties = {name_key(n) for n in non_parties}
        return reg

    def is_non_party(self, mention: str) -> bool:
        return name_key(mention) in self.non_parties

    def is_known(self, mention: str) -> bool:
        key = name_key(mention)
        return key in self.canonical or self.canonical.get(name_key(
            self.canonicalize(mention) or "")) is not None

    def brand_owner(self, mention: str) -> str | None:
        return self.brands.get(name_key(mention))

    def canonicalize(self, mention: str) -> str | None:
        """Canonical company name of a mention; None for empty or non-party names."""
        owner, sep, rest = mention.partition("'s ")
        if sep and rest and name_key(owner) in self.non_parties:
            mention = rest  # "Britain's Cable and Wireless Plc", "China's Baosteel"
        key = name_key(mention)
        if not key or key in self.non_parties or all(w in GENERIC_WORDS for w in key.split()):
            return None
        if key in self.canonical:
            return self.canonical[key]
        # "Nissan Motor Manufacturing" -> drop generic trailing words until a registry hit
        # ("Nissan"); "Sumitomo Bakelite" stays itself.
        words = key.split()
        for n in range(len(words) - 1, 0, -1):
            if words[n] not in GENERIC_TRAILING:
                break
            hit = self.canonical.get(" ".join(words[:n]))
            if hit:
                return hit
        return clean_mention(mention)

    def patterns(self) -> list[dict]:
        """EntityRuler phrase patterns (case-sensitive) for every name, alias and brand."""
        return [{"label": "ORG", "pattern": form} for form in sorted(self.surface_forms)]


def _data(name: str) -> dict:
    return json.loads(resources.files("services.extractor").joinpath("data", name).read_text())


@cache
def default_registry() -> CompanyRegistry:
    return CompanyRegistry.from_data(_data("companies.json")["companies"],
                                     _data("lexicon.json")["non_parties"])


@cache
def lexicon() -> dict:
    return _data("lexicon.json")
