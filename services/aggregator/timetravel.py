"""Time travel: an alliance as it stood at a past instant, refolded from its kept observations.

The live state is `state.derive` over the alliance's kept observations (the latest
`Rules.observation_limit`, 200 by default). The state *as of* an instant is the same fold
over the kept observations published up to that instant: same stage rules, same episode gap,
so `as_of(state, latest publication)` is the state itself (a property test checks it).

What the observation bound means: an alliance reported by more than `observation_limit`
events keeps only the latest ones, so for an instant older than its oldest kept observation
the refold sees less than happened (at worst nothing: the answer is "not known then"). The
live state itself is folded from the same kept observations, so past and present agree with
each other; only very long histories lose their oldest reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.aggregator.queries import CompanyView, company_view
from services.aggregator.state import Rules, derive
from shared.contracts import AllianceState, CompanyIndex, CompanyLink, company_key


def as_of(state: AllianceState, when: datetime, rules: Rules = Rules()) -> AllianceState | None:
    """The alliance as the fold gives it over the observations published up to `when`
    (inclusive); None when none was published by then. `updated_at` is kept from `state`."""
    kept = [o for o in state.observations if o.published_at <= when]
    if not kept:
        return None
    past = derive(state.alliance_id, state.parties, kept, rules)
    return past.model_copy(update={"updated_at": state.updated_at})


def states_as_of(states: Iterable[AllianceState], when: datetime | None,
                 rules: Rules) -> Iterable[AllianceState]:
    """Each state as of `when` (those unknown then left out); the states as they are when
    `when` is None."""
    if when is None:
        return states
    return (past for s in states if (past := as_of(s, when, rules)) is not None)


def company_view_of(key: str, rows: Iterable[Any]) -> CompanyView | None:
    """A company's view from its alliances (states or summaries, e.g. as of a date), built
    the way the company index builds it; None when it has none."""
    links = [CompanyLink(company=party, alliance_id=row.alliance_id, parties=row.parties,
                         stage=row.stage, episode=row.episode,
                         last_changed=row.last_changed, source_offset=0)
             for row in rows for party in row.parties if company_key(party) == key]
    if not links:
        return None
    return company_view(CompanyIndex(key=key, company=links[0].company,
                                     alliances=sorted(links, key=lambda x: x.alliance_id)))
