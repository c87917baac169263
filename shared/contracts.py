"""Message contracts: one versioned pydantic model per Kafka topic.

These models are the single source of truth for what travels on the wire (JSON); the topic
registry (`shared/topics.py`) says which topic carries which model, and the README's tables
and the AsyncAPI document are made from both. A breaking change is a new model and a
new topic (`...v2`), never an edit in place.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
#: Bounds that keep one hostile article from stalling NLP (found by fuzzing: the extractor's
#: cost grows with the square of a word's length, ~4 s for an 8,000-character "word", so a
#: 200 kB one held its partition for most of an hour). Real titles and words are far shorter;
#: a URL in the text is one word, hence the generous limit.
MAX_TITLE_CHARS = 1000
MAX_WORD_CHARS = 1000
_GIANT_WORD = re.compile(rf"\S{{{MAX_WORD_CHARS + 1}}}")


class Stage(StrEnum):
    """Where a partnership stands, as defined in the annotation guide."""

    RUMORED = "rumored"
    TALKS = "talks"
    AGREED = "agreed"
    ACTIVE = "active"
    FAILED = "failed"
    ENDED = "ended"


#: The one definition of stage order (the enum's order): the open stages in the order a
#: partnership moves through them, then the two that close an episode. The aggregator's
#: stage rules, its tie-break for reports published at the same instant, the evaluation's
#: tables and the API's grouping all read it from here.
OPEN_STAGES: tuple[Stage, ...] = (Stage.RUMORED, Stage.TALKS, Stage.AGREED, Stage.ACTIVE)
TERMINAL_STAGES: frozenset[Stage] = frozenset({Stage.FAILED, Stage.ENDED})


def stage_rank(stage: Stage) -> int:
    """Position of `stage` in the stage order (rumored 0 ... ended 5)."""
    return _STAGE_RANK[stage]


_STAGE_RANK = {stage: rank for rank, stage in enumerate(Stage)}


def utcnow() -> datetime:
    return datetime.now(UTC)


def slug(name: str) -> str:
    """A name as a key part: ASCII, lower case, runs of other characters as one '-'
    ("Citroën SA" -> "citroen-sa"). Alliance ids and company keys are made of these."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def alliance_id_for(parties: list[str]) -> str:
    """Stable, readable key of a party set: slugs of the sorted canonical names joined by '+'.

    The same companies give the same id in any order, in any article, on any worker; it is
    the Kafka key of partnership, change and state records, so one alliance lives in one
    partition.
    """
    slugs = sorted({slug(p) for p in parties if slug(p)})
    if len(slugs) < 2:
        raise ValueError(f"an alliance needs two or more distinct parties, got {parties!r}")
    return "+".join(slugs)


def stable_hash(*parts: str, length: int = 20) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


class Contract(BaseModel):
    """Base of every wire model: strict about unknown fields, JSON bytes in and out."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64",
                              val_json_bytes="base64")

    def key(self) -> bytes:
        """The Kafka record key for this message."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Contract:
        return cls.model_validate_json(raw)


class ArticleEvent(Contract):
    """A cleaned news article, published once per distinct story by the ingestor."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    article_id: NonEmptyStr = Field(
        description="Stable id: from the feed guid or canonical URL, else a content hash.",
        examples=["reuters-1987-0042"],
    )
    url: str | None = Field(None, description="Canonical URL of the article, when known.")
    title: str = Field("", max_length=MAX_TITLE_CHARS, description="Headline.")
    text: NonEmptyStr = Field(description="Clean body text; evidence offsets point into it. "
                              f"No word longer than {MAX_WORD_CHARS} characters.")
    source: str = Field("unknown", description="Feed, outlet or channel the article came from.")
    published_at: AwareDatetime = Field(description="When the news was published (UTC).")
    fetched_at: AwareDatetime = Field(default_factory=utcnow,
                                       description="When the ingestor took the article in.")
    language: str = Field("en", description="ISO 639-1 language code of the text.")

    @field_validator("text", "title")
    @classmethod
    def _no_giant_words(cls, value: str) -> str:
        if _GIANT_WORD.search(value):
            raise ValueError(f"has a word longer than {MAX_WORD_CHARS} characters")
        return value

    def key(self) -> bytes:
        return self.article_id.encode()


class Evidence(BaseModel):
    """The sentence that supports an event, with character offsets into the article text.

    `cue_start`/`cue_end` were added later, optional with a null default: a record written
    before them still validates and reads as "cue unknown", so the change is additive and
    `schema_version` stays 1 (a version bump is for changes old readers or old records
    cannot survive).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sentence: str = Field(description="The supporting sentence, verbatim.")
    start: int = Field(ge=0, description="Offset of the sentence's first character in `text`.")
    end: int = Field(ge=0, description="Offset just past the sentence's last character.")
    cue_start: int | None = Field(None, ge=0, description="Offset in the article `text` of "
                                  "the cue words that fired in this sentence (within "
                                  "start..end); null when unknown.")
    cue_end: int | None = Field(None, ge=0, description="Offset just past the cue words; "
                                "null when unknown.")

    @model_validator(mode="after")
    def _ordered(self) -> Evidence:
        if self.end < self.start:
            raise ValueError("evidence end precedes start")
        if (self.cue_start is None) != (self.cue_end is None):
            raise ValueError("cue_start and cue_end are both set or both null")
        if self.cue_start is not None and self.cue_end is not None and not (
                self.start <= self.cue_start < self.cue_end <= self.end):
            raise ValueError("the cue must be a non-empty span inside the sentence "
                             "(start <= cue_start < cue_end <= end)")
        return self

    @property
    def cue(self) -> str | None:
        """The cue words as they stand in `sentence`, or None when unknown."""
        if self.cue_start is None or self.cue_end is None:
            return None
        return self.sentence[self.cue_start - self.start:self.cue_end - self.start]


class AttributionKind(StrEnum):
    OUTLET = "outlet"
    ANONYMOUS = "anonymous"
    OFFICIAL = "official"
    DENIAL = "denial"
    UNATTRIBUTED = "unattributed"


class Attribution(BaseModel):
    """Who reported or said what the evidence states."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AttributionKind = Field(AttributionKind.UNATTRIBUTED,
                                  description="Named outlet, anonymous sources, an official "
                                  "statement or denial, or nothing stated.")
    name: str | None = Field(None, description="The outlet or speaker, when named.",
                             examples=["The Wall Street Journal"])


class PartnershipEvent(Contract):
    """One party set and its stage as reported by one article.

    `article_url` and the evidence's cue offsets came later as optional fields with null
    defaults: older records still validate, so schema_version stays 1."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    event_id: NonEmptyStr = Field(description="Deterministic from article id and party set, so "
                                  "a redelivered or re-extracted event is recognisable.")
    article_id: NonEmptyStr = Field(description="The article the event was read from.")
    parties: list[NonEmptyStr] = Field(min_length=2, description="Canonical company names, "
                                       "sorted.", examples=[["Chrysler", "Nissan"]])
    stage: Stage = Field(description="Latest stage the article reports for this party set.")
    areas: list[str] = Field(default_factory=list, description="Fields of cooperation.")
    confidence: float = Field(ge=0.0, le=1.0, description="Estimated probability the event is "
                              "right (party set and stage).")
    evidence: list[Evidence] = Field(default_factory=list, min_length=1,
                                     description="Supporting sentences.")
    attribution: Attribution = Field(default_factory=Attribution,
                                     description="Who reported or said it.")
    published_at: AwareDatetime = Field(description="Publication time of the article.")
    source: str = Field("unknown", description="Source of the article.")
    article_url: str | None = Field(None, description="URL of the article, when known "
                                    "(added later, optional: older records read as null).")
    ingested_at: AwareDatetime | None = Field(None, description="When the ingestor took the "
                                              "article in (for end-to-end latency).")
    extractor_version: str = Field("1", description="Version of the extraction logic.")

    @field_validator("parties")
    @classmethod
    def _sorted_unique(cls, parties: list[str]) -> list[str]:
        if len(set(parties)) != len(parties):
            raise ValueError("parties must be distinct")
        # The alliance id is the record key and the table key: parties that give none
        # ("!!", "??"; "Acme" and "ACME") are no alliance (found by fuzzing: such a record
        # decoded, then failed when keyed).
        alliance_id_for(parties)
        return sorted(parties)

    @property
    def alliance_id(self) -> str:
        return alliance_id_for(self.parties)

    def key(self) -> bytes:
        return self.alliance_id.encode()

    @staticmethod
    def make_event_id(article_id: str, parties: list[str]) -> str:
        return stable_hash(article_id, alliance_id_for(parties))


class StageTransition(BaseModel):
    """One stage change of an alliance, with what caused it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    previous_stage: Stage | None = Field(description="Stage before; null for a new alliance.")
    stage: Stage
    episode: int = Field(ge=1, description="Counts revivals: a new episode opens after "
                         "failed/ended or a long silence.")
    changed_at: AwareDatetime = Field(description="Publication time of the causing news.")
    event_id: str
    article_id: str
    article_url: str | None = Field(None, description="URL of that article, when known.")
    evidence: list[Evidence] = Field(default_factory=list)


class Observation(BaseModel):
    """A partnership event as kept in state: enough to re-derive the stage in any order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    article_id: str
    stage: Stage
    published_at: AwareDatetime
    confidence: float
    areas: list[str] = Field(default_factory=list)
    source: str = "unknown"
    article_url: str | None = None
    attribution: Attribution = Field(default_factory=Attribution)
    evidence: list[Evidence] = Field(default_factory=list)


class AllianceState(Contract):
    """The live view of one alliance: the value of the aggregator's table."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    alliance_id: str = Field(description="Key: slugs of the sorted party names joined by '+'.")
    parties: list[str] = Field(description="Canonical company names, sorted.")
    stage: Stage = Field(description="Current stage.")
    episode: int = Field(1, ge=1, description="Current episode (revivals open a new one).")
    areas: list[str] = Field(default_factory=list, description="Union of reported areas.")
    first_seen: AwareDatetime = Field(description="Publication time of the earliest news.")
    last_changed: AwareDatetime = Field(description="Publication time of the news that set "
                                        "the current stage.")
    confidence: float = Field(ge=0.0, le=1.0, description="Best confidence supporting the "
                              "current stage.")
    sources: list[str] = Field(default_factory=list, description="Sources that reported it.")
    article_count: int = Field(ge=0, description="Distinct supporting articles.")
    history: list[StageTransition] = Field(default_factory=list,
                                           description="Stage transitions, oldest first "
                                           "(bounded).")
    observations: list[Observation] = Field(default_factory=list,
                                            description="Supporting events, by publication "
                                            "time (bounded).")
    updated_at: AwareDatetime = Field(default_factory=utcnow,
                                      description="Wall-clock time of the last update.")

    def key(self) -> bytes:
        return self.alliance_id.encode()


class AllianceChange(Contract):
    """Emitted exactly when an alliance appears or its stage changes."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    change_id: str = Field(description="Deterministic id of this transition; consumers dedup "
                           "on it (delivery is at-least-once).")
    alliance_id: str = Field(description="Key of the alliance.")
    parties: list[str] = Field(description="Canonical company names, sorted.")
    previous_stage: Stage | None = Field(description="Stage before; null for a new alliance.")
    stage: Stage = Field(description="Stage after the change.")
    episode: int = Field(1, ge=1, description="Episode the new stage belongs to.")
    changed_at: AwareDatetime = Field(description="Publication time of the causing news.")
    event_id: str = Field(description="The partnership event that caused the change.")
    article_id: str = Field(description="The article that caused the change.")
    article_url: str | None = Field(None, description="URL of that article, when known "
                                    "(added later, optional: older records read as null).")
    evidence: list[Evidence] = Field(default_factory=list, description="Its evidence.")
    emitted_at: AwareDatetime = Field(default_factory=utcnow,
                                      description="Wall-clock time the change was emitted.")

    def key(self) -> bytes:
        return self.alliance_id.encode()


class DeadLetter(Contract):
    """A record a service could not process, kept with the reason instead of being lost."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    service: str = Field(description="The service that rejected the record.")
    topic_name: str = Field(description="Topic the record came from.")
    partition: int | None = Field(None, description="Partition it came from.")
    offset: int | None = Field(None, description="Offset it had there.")
    record_key: bytes | None = Field(None, description="Original key (base64 in JSON).")
    record_value: bytes | None = Field(None, description="Original raw bytes (base64 in "
                                       "JSON).")
    reason: str = Field(description="Short machine-readable reason, e.g. invalid_json.")
    error: str = Field(description="Human-readable error.")
    failed_at: AwareDatetime = Field(default_factory=utcnow)

    def key(self) -> bytes:
        return f"{self.topic_name}:{self.partition}:{self.offset}".encode()


class SeenArticle(Contract):
    """A story the ingestor published: replayed at start-up so duplicates stay duplicates
    across restarts. Keyed by article_id; a null value (tombstone) forgets it."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    article_id: NonEmptyStr = Field(description="The published article.")
    keys: list[str] = Field(default_factory=list, description="Exact identity keys "
                            "(`id:`, `url:`, `text:` + hash) that make a later item a "
                            "duplicate.")
    minhash: bytes | None = Field(None, description="MinHash signature of the text's word "
                                  "shingles (little-endian uint32, base64 in JSON); null for "
                                  "short texts.")
    minhash_scheme: str = Field("", description="Shingle size, permutations and seed of "
                                "`minhash`; signatures of another scheme are not compared.")
    source: str = Field("unknown", description="Source of the article.")
    seen_at: AwareDatetime = Field(default_factory=utcnow, description="When it was "
                                   "published; the dedup window counts from here.")

    def key(self) -> bytes:
        return self.article_id.encode()


class RawDocument(Contract):
    """A raw document handed to the ingestor over Kafka: a feed, JSON Lines, JSON, HTML or
    text in `content`, or a `url` for the ingestor to fetch."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    document_id: NonEmptyStr = Field(description="Sender's id of the document (the key).")
    name: str = Field("inbox", description="File name or label; `.html` marks a web page, "
                      "and rejected items are reported as name:line.")
    source: str | None = Field(None, description="Source for items that name none.")
    content: str | None = Field(None, description="The document itself.")
    url: str | None = Field(None, description="Where to fetch the document when `content` is "
                            "null (http/https, public addresses only).")

    @model_validator(mode="after")
    def _content_or_url(self) -> RawDocument:
        if (self.content is None) == (self.url is None):
            raise ValueError("give exactly one of content and url")
        return self

    def key(self) -> bytes:
        return self.document_id.encode()


def company_key(name: str) -> str:
    """Key of a company in the aggregator's company index: the slug used in alliance ids
    ("Honda Motor" -> "honda-motor"), so `/companies/Honda%20Motor` and
    `/companies/honda-motor` agree."""
    key = slug(name)
    if not key:
        raise ValueError(f"{name!r} has no letters or digits to key a company by")
    return key


class CompanyLink(Contract):
    """One alliance of one company, as of its latest change (internal repartition record)."""


    schema_version: Literal[1] = Field(1, description="Contract version of this message.")
    company: str = Field(description="Canonical company name (the record key is its slug).")
    alliance_id: str = Field(description="The alliance.")
    parties: list[str] = Field(description="Every party of the alliance, sorted.")
    stage: Stage = Field(description="Stage of the alliance after the change.")
    episode: int = Field(ge=1, description="Episode of that stage.")
    last_changed: AwareDatetime = Field(description="Publication time of the news that set "
                                        "the stage.")
    source_offset: int = Field(ge=0, description="Offset of the partnership record that "
                               "caused the change: newer records of one alliance have higher "
                               "offsets, so a late redelivery cannot undo a newer link.")

    @field_validator("company")
    @classmethod
    def _keyable(cls, company: str) -> str:
        company_key(company)  # a name without letters or digits has no index key
        return company

    def key(self) -> bytes:
        return company_key(self.company).encode()

    @property
    def partners(self) -> list[str]:
        return [p for p in self.parties if p != self.company]


class CompanyIndex(BaseModel):
    """Value of the aggregator's `companies` table: every alliance of one company."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Slug of the company name.")
    company: str = Field(description="Canonical company name.")
    alliances: list[CompanyLink] = Field(default_factory=list,
                                         description="One link per alliance, by alliance id.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
