"""The company index: company -> its alliances, kept in a second table keyed by company.

Why a repartition topic: the `alliances` table is keyed (and partitioned) by alliance id, so
one company's alliances are spread over every partition. A table keyed by company must be
written by the worker that owns the company's partition, or the router (which hashes the
key) would send a query for "Nissan" to a worker that never saw Nissan. So on every change
the alliance agent sends one `CompanyLink` per party to `<app id>-company-index`, keyed by
the company; a second agent reads that topic and updates `companies`. The topic, the
`companies` changelog and the routing all hash the same key over the same partition count,
so each company lives in exactly one partition and one table shard.

The functions here are pure (no Kafka): the agents and the HTTP views call them. The
records themselves (`CompanyLink`, `CompanyIndex`) are contracts in `shared/contracts.py`.
"""

from __future__ import annotations

from shared.contracts import (
    AllianceState,
    CompanyIndex,
    CompanyLink,
    Stage,
    company_key,
)

__all__ = ["CompanyIndex", "CompanyLink", "add_link", "company_key", "index_changed",
           "index_topic_name", "links_for", "partners_by_stage"]


def index_topic_name(app_id: str) -> str:
    """Internal topic of one aggregator app (a replay with a new app id gets its own)."""
    return f"{app_id}-company-index"


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
