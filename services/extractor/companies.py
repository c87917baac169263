"""Company names: one canonical name per company *as the article's time knew it*.

The canonical name is the key of the alliance view, so it must be deterministic: the same
mention on the same date always maps to the same string. Known companies come from
`data/companies.json` (aliases, brands and units map to their owner), each name, alias and
brand valid over an optional period (`from`, `until`): Exxon in a 1987 story is Exxon, not the
ExxonMobil it became in 1999. Every other name is normalised by rule (wire-copy tickers,
legal suffixes, punctuation) and otherwise kept as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import spacy
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
_INITIALS_RE = re.compile(r"(?<![\w.])(?:[A-Za-z]\.)+[A-Za-z]\b\.?")
#: A dotted legal form at the end of a name ("Bull S.A.", "Degussa A.G."): its dots go, so
#: the legal form is recognised and stripped. Dotted initials that start or sit inside a
#: name ("E.B. Michaels Research Associates", "R.M. Wilson Co") stay as written.
_DOTTED_RE = re.compile(r"(?<![\w.])(?:[A-Za-z]\.)+[A-Za-z]\.?$")
#: Dates compare as ISO strings; a missing bound is open.
_EARLIEST, _LATEST = "0000-00-00", "9999-99-99"


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
    # "Stet - Societa Finanziaria Telefonica", "Societa Meridionale Finanziaria Spa - SME":
    # either side names the company; the first is the one written first.
    name = re.split(r"\s+-\s+", name)[0]
    name = re.sub(r"\s+\([A-Za-z]+\)(?=\s)", "", name)  # "Cheung Kong (Holdings) Ltd"
    stripped = _legal_basename(name)
    stripped = _SUFFIX_RE.sub("", stripped).strip(" ,.")
    stripped = re.sub(r"\s+(?:and|&)$", "", stripped)  # "Wood Mackenzie and Co Ltd"
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
    # Initials key alike however they are dotted ("E.I. du Pont" / "EI du Pont").
    name = _INITIALS_RE.sub(lambda m: m.group(0).replace(".", ""), clean_mention(text))
    return re.sub(r"[^a-z0-9&]+", " ", name.lower()).strip()


def day(when: date | datetime | str | None) -> str:
    """ISO day string of a date; None means today (a live article)."""
    if when is None:
        return date.today().isoformat()
    if isinstance(when, str):
        return when[:10]
    return when.date().isoformat() if isinstance(when, datetime) else when.isoformat()


@dataclass(frozen=True)
class Claim:
    """`key` means `company` from `start` (inclusive) to `end` (exclusive)."""

    company: str
    start: str = _EARLIEST
    end: str = _LATEST

    def holds(self, on: str) -> bool:
        return self.start <= on < self.end


@dataclass
class CompanyRegistry:
    """Canonical names with dated aliases, brands and units; non-party names (outlets,
    bodies, places)."""

    names: dict[str, list[Claim]] = field(default_factory=dict)  # key -> dated companies
    brands: dict[str, list[Claim]] = field(default_factory=dict)  # brand key -> dated owners
    non_parties: set[str] = field(default_factory=set)
    surface_forms: set[str] = field(default_factory=set)  # as written, for the EntityRuler

    @classmethod
    def from_data(cls, companies: dict[str, Any], non_parties: list[str]) -> CompanyRegistry:
        reg = cls()
        for name, info in companies.items():
            start, end = info.get("from", _EARLIEST), info.get("until", _LATEST)
            reg._claim(reg.names, name, name, start, end)
            for alias in info.get("aliases", []):
                reg._claim(reg.names, alias, name, start, end)
            for brand in info.get("brands", []):
                reg._claim(reg.brands, brand, name, start, end)
        reg.non_parties = {name_key(n) for n in non_parties}
        return reg

    def _claim(self, table: dict[str, list[Claim]], entry: str | dict[str, str], company: str,
               start: str, end: str) -> None:
        if isinstance(entry, dict):  # {"name": ..., "from": ..., "until": ...}
            start = max(start, entry.get("from", _EARLIEST))
            end = min(end, entry.get("until", _LATEST))
            entry = entry["name"]
        table.setdefault(name_key(entry), []).append(Claim(company, start, end))
        self.surface_forms.add(entry)

    @classmethod
    def from_file(cls, path: Path) -> CompanyRegistry:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls.from_data(data["companies"], data.get("non_parties", []))

    @staticmethod
    def _at(claims: list[Claim] | None, on: str) -> str | None:
        for claim in claims or ():
            if claim.holds(on):
                return claim.company
        return None

    def is_non_party(self, mention: str) -> bool:
        return name_key(mention) in self.non_parties

    def is_known(self, mention: str, when: date | datetime | str | None = None) -> bool:
        return self._lookup(name_key(mention), day(when)) is not None

    def brand_owner(self, mention: str, when: date | datetime | str | None = None
                    ) -> str | None:
        return self._at(self.brands.get(name_key(mention)), day(when))

    def _lookup(self, key: str, on: str) -> str | None:
        hit = self._at(self.names.get(key), on)
        if hit:
            return hit
        # "Nissan Motor Manufacturing" -> drop generic trailing words until a registry hit
        # ("Nissan"); "Sumitomo Bakelite" stays itself.
        words = key.split()
        for n in range(len(words) - 1, 0, -1):
            if words[n] not in GENERIC_TRAILING:
                break
            hit = self._at(self.names.get(" ".join(words[:n])), on)
            if hit:
                return hit
        return None

    def canonicalize(self, mention: str, when: date | datetime | str | None = None
                     ) -> str | None:
        """Canonical company name of a mention on a date (None: today); None for empty or
        non-party names. Unknown names, and known ones outside their period, stay as
        written (cleaned)."""
        owner, sep, rest = mention.partition("'s ")
        if sep and rest and name_key(owner) in self.non_parties:
            mention = rest  # "Britain's Cable and Wireless Plc", "China's Baosteel"
        key = name_key(mention)
        if not key or key in self.non_parties or all(w in GENERIC_WORDS for w in key.split()):
            return None
        return self._lookup(key, day(when)) or clean_mention(mention)

    def patterns(self) -> list[dict[str, str]]:
        """EntityRuler phrase patterns (case-sensitive) for every name, alias and brand."""
        return [{"label": "ORG", "pattern": form} for form in sorted(self.surface_forms)]


def default_registry_path() -> Path:
    return Path(str(resources.files("services.extractor").joinpath("data", "companies.json")))


@cache
def load_registry(path: str | None = None) -> CompanyRegistry:
    return CompanyRegistry.from_file(Path(path) if path else default_registry_path())


def default_registry() -> CompanyRegistry:
    return load_registry(None)


@spacy.registry.misc("radar.company_registry.v1")
def company_registry(path: str | None = None) -> CompanyRegistry:
    """The registry a pipeline config names: the packaged one unless `path` is given."""
    return load_registry(path)
