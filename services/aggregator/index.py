"""The company index: company -> its alliances, kept in a second table keyed by company.

Why a repartition topic: the `alliances` table is keyed (and partitioned) by alliance id, so
one company's alliances are spread over every partition. A table keyed by company must be
written by the worker that owns the company's partition, or the router (which hashes the
key) would send a query for "Nissan" to a worker that never saw Nissan. So on every change
the alliance agent sends one `CompanyLink` per party to `<app id>-company-index`, keyed by
the company; a second agent reads that topic and updates `companies`. The topic, the
`companies` changelog and the routing all hash the same key over the same partition count,
so each company lives in exactly one partition and one table shard.

The functions here are pure (no Kafka): the agents and the HTTP views call them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.contracts import AllianceState, Contract, Stage, _slug


def company_key(name: str) -> str:
    """Key of a company in the index: the slug used in alliance ids ("Honda Motor" ->
    "honda-motor"), so `/companies/Honda%20Motor` and `/companies/honda-motor` agree."""
    key = _slug(name)
    if not key:
        raise ValueError(f"{name!r} has no letters or digits to key a company by")
    return key


def index_topic_name(app_id: str) -> str:
    """Internal topic of one aggregator app (a replay with a new app id gets its own)."""
    return f"{app_id}-company-index"


class CompanyLink(Contract):
    """One alliance of one company, as of its latest change (internal repartition record)."""

    topic: ClassVar[str] = "<app id>-company-index"

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
    """Value of the `companies` table: every alliance of one company."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Slug of the company name.")
    company: str = Field(description="Canonical company name.")
    alliances: list[CompanyLink] = Field(default_factory=list,
                                         description="One link per alliance, by alliance id.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def links_for(state: AllianceState, source_offset: int) -> list[CompanyLink]:
    """The index records one alliance change produces: one per party."""
    return [CompanyLink(company=party, alliance_id=state.alliance_id, parties=state.parties,
                        stage=state.stage, episode=state.episode,
                        last_changed=state.last_changed, source_offset=source_offset)
            for party in state.parties]


def index_changed(previous: AllianceState | None, new: AllianceState) -> bool:
    """Whether the fields the index keeps moved: the stage, and also the episode or the
    time it was set, which a late, older report can move without a stage change."""
    return previous is None or (
        (previous.stage, previous.episode, previous.last_changed)
        != (new.stage, new.episode, new.last_changed))


def add_link(index: CompanyIndex | None, link: CompanyLink) -> CompanyIndex | None:
    """The index with `link` applied, or None when it changes nothing (a redelivered or
    older link: its source offset is not newer than the one kept)."""
    current = {a.alliance_id: a for a in (index.alliances if index else [])}
    kept = current.get(link.alliance_id)
    if kept is not None and kept.source_offset >= link.source_offset:
        return None
    current[link.alliance_id] = link
    return CompanyIndex(key=company_key(link.company), company=link.company,
                        alliances=[current[k] for k in sorted(current)])


def partners_by_stage(index: CompanyIndex) -> dict[Stage, list[str]]:
    """Partners of the company grouped by the stage of the alliance they share, in stage
    order; a partner in several alliances appears under each of their stages."""
    grouped: dict[Stage, set[str]] = {}
    for link in index.alliances:
        grouped.setdefault(link.stage, set()).update(link.partners)
    return {stage: sorted(grouped[stage]) for stage in Stage if grouped.get(stage)}
