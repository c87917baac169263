"""Stage rules: a pure function from the events seen for an alliance to its state.

The state is a fold over the alliance's observations sorted by publication time, so the
result does not depend on arrival order: a 2007 article arriving after a 2024 one lands in
its place in time and cannot reset the 2024 stage. Rules of the fold:

* the first report opens episode 1 at its stage;
* in an open episode (rumored, talks, agreed, active) a report moves the stage only forward
  (rumored -> talks -> agreed -> active); weaker or equal news only adds support;
* `failed` or `ended` closes the episode from any open stage;
* after a closed episode, a report of rumored/talks/agreed/active opens a new episode
  (a revival); after `episode_gap_days` of silence, a report of a lower stage does too;
* an event id already seen changes nothing (at-least-once delivery is safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.contracts import (
    OPEN_STAGES,
    TERMINAL_STAGES,
    AllianceChange,
    AllianceState,
    Observation,
    PartnershipEvent,
    Stage,
    StageTransition,
    stable_hash,
    stage_rank,
    utcnow,
)

#: Stage order is defined once, in `shared.contracts`: the open stages move forward only.
OPEN_RANK: dict[Stage, int] = {stage: rank for rank, stage in enumerate(OPEN_STAGES)}
TERMINAL = TERMINAL_STAGES


@dataclass(frozen=True)
class Rules:
    history_limit: int = 50
    observation_limit: int = 200
    episode_gap_days: int = 365


def next_stage(current: Stage | None, reported: Stage, lapsed: bool) -> tuple[Stage, bool]:
    """The stage after a report, and whether it opens a new episode."""
    if current is None:
        return reported, True
    if current in TERMINAL:
        if reported in TERMINAL:
            return current, False
        return reported, True
    if reported in TERMINAL:
        return reported, False
    if OPEN_RANK[reported] > OPEN_RANK[current]:
        return reported, False
    if lapsed and reported != current:
        return reported, True
    return current, False


def _order(obs: Observation) -> tuple:
    # Tie-break for reports with the same publication time: the more final one counts last.
    return (obs.published_at, stage_rank(obs.stage), obs.event_id)


def observation_of(event: PartnershipEvent) -> Observation:
    return Observation(event_id=event.event_id, article_id=event.article_id, stage=event.stage,
                       published_at=event.published_at, confidence=event.confidence,
                       areas=list(event.areas), source=event.source,
                       article_url=event.article_url, attribution=event.attribution,
                       evidence=list(event.evidence))


def derive(alliance_id: str, parties: list[str], observations: list[Observation],
           rules: Rules) -> AllianceState:
    """Fold sorted observations into the alliance state."""
    ordered = sorted(observations, key=_order)[-rules.observation_limit:]
    stage: Stage | None = None
    episode = 0
    setter: Observation | None = None
    previous_at = None
    transitions: list[StageTransition] = []
    support: dict[int, list[Observation]] = {}
    gap = timedelta(days=rules.episode_gap_days)
    for obs in ordered:
        lapsed = previous_at is not None and obs.published_at - previous_at > gap
        new_stage, new_episode = next_stage(stage, obs.stage, lapsed)
        if new_episode:
            episode += 1
        if new_stage != stage or new_episode:
            transitions.append(StageTransition(
                previous_stage=stage, stage=new_stage, episode=episode,
                changed_at=obs.published_at, event_id=obs.event_id,
                article_id=obs.article_id, article_url=obs.article_url,
                evidence=obs.evidence))
            stage, setter = new_stage, obs
        support.setdefault(episode, []).append(obs)
        previous_at = obs.published_at
    assert stage is not None and setter is not None, "derive needs at least one observation"
    current = [o for o in support[episode] if o.stage == stage] or [setter]
    return AllianceState(
        alliance_id=alliance_id,
        parties=parties,
        stage=stage,
        episode=episode,
        areas=sorted({a for o in ordered for a in o.areas}),
        first_seen=ordered[0].published_at,
        last_changed=setter.published_at,
        confidence=max(o.confidence for o in current),
        sources=sorted({o.source for o in ordered}),
        article_count=len({o.article_id for o in ordered}),
        history=transitions[-rules.history_limit:],
        observations=ordered,
        updated_at=utcnow(),
    )


def apply(state: AllianceState | None, event: PartnershipEvent,
          rules: Rules = Rules()) -> tuple[AllianceState | None, AllianceChange | None]:
    """Add one event to an alliance. Returns (new state or None if unchanged, change or None).

    A change is returned exactly when the alliance is new or its stage differs. A late,
    older report can renumber episodes without moving the current stage (a 2007 `failed`
    under a 2024 `talks`): that enriches history but is not a change.
    """
    if state is not None and any(o.event_id == event.event_id for o in state.observations):
        return None, None
    observations = [*(state.observations if state else []), observation_of(event)]
    new = derive(event.alliance_id, event.parties, observations, rules)
    if state is not None and new.stage == state.stage:
        return new, None
    cause = new.history[-1]
    change = AllianceChange(
        change_id=stable_hash(new.alliance_id, str(new.episode), new.stage, cause.event_id),
        alliance_id=new.alliance_id, parties=new.parties,
        previous_stage=state.stage if state else None, stage=new.stage, episode=new.episode,
        changed_at=cause.changed_at, event_id=cause.event_id, article_id=cause.article_id,
        article_url=cause.article_url, evidence=cause.evidence)
    return new, change
