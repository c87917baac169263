"""The cue table (data/cues.toml): every pattern and word list of the extractor, loaded once.

Cues are signals, not decisions: `CueTable.fired` tells which cues a stretch of text shows,
and the trained models weigh them. Gate cues also choose the sentences worth parsing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import spacy

#: The cue whose words show each stage: the one highlighted in an evidence sentence.
STAGE_CUES: dict[str, str] = {"rumored": "stage_hedge", "talks": "stage_talks",
                              "agreed": "stage_agreed", "active": "stage_active",
                              "failed": "stage_failed", "ended": "stage_ended"}


@dataclass(frozen=True)
class Cue:
    name: str
    pattern: re.Pattern[str]
    gate: bool = False
    #: Right after a gate sentence, a sentence this cue fires in is parsed and proposes
    #: candidates too ("X signed with Y. Both companies will ...": it says who cooperates).
    follow_up: bool = False
    why: str = ""
    match: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()


def _cue(entry: dict[str, Any]) -> Cue:
    flags = 0 if entry.get("case_sensitive") else re.I
    return Cue(name=entry["name"], pattern=re.compile(entry["pattern"], flags),
               gate=bool(entry.get("gate", False)),
               follow_up=bool(entry.get("follow_up", False)), why=entry.get("why", ""),
               match=tuple(entry.get("match", ())), no_match=tuple(entry.get("no_match", ())))


@dataclass(frozen=True)
class NameRules:
    designators: tuple[str, ...]
    body: re.Pattern[str]
    body_match: tuple[str, ...]
    body_no_match: tuple[str, ...]
    not_companies: frozenset[str]
    start_words: frozenset[str]
    headline_stop: frozenset[str]
    unit_words: frozenset[str]
    generic_words: frozenset[str]
    name_connectors: tuple[str, ...] = ()
    legal_form: re.Pattern[str] | None = None
    legal_form_match: tuple[str, ...] = ()
    legal_form_no_match: tuple[str, ...] = ()
    descriptor_nouns: tuple[str, ...] = ()
    descriptor_match: tuple[str, ...] = ()
    descriptor_no_match: tuple[str, ...] = ()
    descriptor_stop: frozenset[str] = frozenset()
    wire_case: re.Pattern[str] | None = None
    wire_case_match: tuple[str, ...] = ()
    wire_case_no_match: tuple[str, ...] = ()

    def has_legal_form(self, name: str) -> bool:
        """Does the name end in a company's legal form ("Reuters Holdings Plc")?"""
        return bool(self.legal_form and self.legal_form.search(name.strip()))

    def is_body(self, name: str) -> bool:
        """Does the name say it is a public body, union or market, not a company? A name
        ending in a legal form never does ("Genetics Institute Inc")."""
        return bool(self.body.search(name)) and not self.has_legal_form(name)

    def recase(self, text: str) -> str:
        """The wire's capitalised common words ("U.S. Partner CPC") in lower case: one
        letter each, so every offset stays valid."""
        if self.wire_case is None:
            return text
        return self.wire_case.sub(lambda m: m.group(0)[0].lower() + m.group(0)[1:], text)


class CueTable:
    """Compiled cues, areas, attribution patterns and name rules."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.cues: tuple[Cue, ...] = tuple(_cue(e) for e in data["cue"])
        self.areas: tuple[Cue, ...] = tuple(_cue(e) for e in data["area"])
        self.attribution: tuple[Cue, ...] = tuple(_cue(e) for e in data["attribution"])
        self.by_name = {c.name: c for c in self.cues}
        if len(self.by_name) != len(self.cues):
            raise ValueError("cue names must be unique")
        gate = [c.pattern.pattern for c in self.cues if c.gate]
        # One alternation of every gate cue: a single scan of the raw text decides whether an
        # article can report cooperation at all.
        self.gate = re.compile("|".join(f"(?:{p})" for p in gate), re.I)
        self.follow_ups = tuple(c.pattern for c in self.cues if c.follow_up)
        names = data["names"]
        self.names = NameRules(
            designators=tuple(dict.fromkeys(names["designators"])),
            body=re.compile(names["body_pattern"]),
            body_match=tuple(names.get("body_match", ())),
            body_no_match=tuple(names.get("body_no_match", ())),
            not_companies=frozenset(names["not_companies"]),
            start_words=frozenset(names["start_words"]),
            headline_stop=frozenset(names["headline_stop"]),
            unit_words=frozenset(names["unit_words"]),
            generic_words=frozenset(w.lower() for w in names["generic_words"]),
            name_connectors=tuple(names.get("name_connectors", ())),
            legal_form=re.compile(names["legal_form_pattern"])
            if "legal_form_pattern" in names else None,
            legal_form_match=tuple(names.get("legal_form_match", ())),
            legal_form_no_match=tuple(names.get("legal_form_no_match", ())),
            descriptor_nouns=tuple(names.get("descriptor_nouns", ())),
            descriptor_match=tuple(names.get("descriptor_match", ())),
            descriptor_no_match=tuple(names.get("descriptor_no_match", ())),
            descriptor_stop=frozenset(names.get("descriptor_stop", ())),
            wire_case=re.compile(names["wire_case_pattern"])
            if "wire_case_pattern" in names else None,
            wire_case_match=tuple(names.get("wire_case_match", ())),
            wire_case_no_match=tuple(names.get("wire_case_no_match", ())))

    def __getitem__(self, name: str) -> re.Pattern[str]:
        return self.by_name[name].pattern

    def fired(self, text: str) -> set[str]:
        """Names of the cues that match somewhere in `text`."""
        return {c.name for c in self.cues if c.pattern.search(text)}

    def is_gate(self, text: str) -> bool:
        return bool(self.gate.search(text))

    def is_follow_up(self, text: str) -> bool:
        """Does a sentence right after a gate sentence say who cooperates ("both
        companies")? Such a sentence is parsed and proposes candidates like a gate one."""
        return any(p.search(text) for p in self.follow_ups)

    def cue_span(self, sentence: str, stage: str) -> tuple[int, int] | None:
        """Where in `sentence` a cue fired, as offsets into it, for highlighting the
        evidence: the cue of the reported `stage` ("in talks", "signed", "called off") when
        it fires there, else the earliest gate cue (the words naming the cooperation, "joint
        venture", "partner"), else in a follow-up sentence its follow-up cue ("the two
        companies"); None when none does. Reads the sentence only: it explains
        a decision already made and changes none."""
        own = self.by_name.get(STAGE_CUES.get(stage, ""))
        match = own.pattern.search(sentence) if own is not None else None
        if match is None:
            found = [m for c in self.cues if c.gate and (m := c.pattern.search(sentence))] \
                or [m for c in self.cues if c.follow_up and (m := c.pattern.search(sentence))]
            match = min(found, key=lambda m: (m.start(), -m.end()), default=None)
        if match is None or match.end() <= match.start():
            return None
        return match.start(), match.end()

    def areas_of(self, text: str) -> list[str]:
        return sorted(a.name for a in self.areas if a.pattern.search(text))

    @classmethod
    def from_file(cls, path: Path) -> CueTable:
        return cls(tomllib.loads(path.read_text(encoding="utf-8")))


def default_cues_path() -> Path:
    return Path(str(resources.files("services.extractor").joinpath("data", "cues.toml")))


@cache
def load_cues(path: str | None = None) -> CueTable:
    return CueTable.from_file(Path(path) if path else default_cues_path())


def default_cues() -> CueTable:
    return load_cues(None)


@spacy.registry.misc("radar.cue_table.v1")
def cue_table(path: str | None = None) -> CueTable:
    """The cue table a pipeline config names: the packaged one unless `path` is given."""
    return load_cues(path)
