"""Time travel without Kafka: `as_of` refolds the kept observations up to an instant."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.queries import Filters, QueryError, parse_as_of
from services.aggregator.state import Rules
from services.aggregator.timetravel import as_of, company_view_of, states_as_of
from shared.contracts import Stage
from tests.unit.test_state import T0, comparable, ev, event_lists, fold


@settings(max_examples=150, deadline=None)
@given(events=event_lists, data=st.data())
def test_as_of_the_latest_observation_is_the_state(events, data):
    state, _ = fold(data.draw(st.permutations(events)))
    latest = max(o.published_at for o in state.observations)
    assert comparable(as_of(state, latest)) == comparable(state)
    assert as_of(state, latest + timedelta(days=999)).updated_at == state.updated_at


@settings(max_examples=150, deadline=None)
@given(events=event_lists, cut=st.integers(-1, 2001))
def test_as_of_equals_folding_only_what_was_published_by_then(events, cut):
    when = T0 + timedelta(days=cut)
    state, _ = fold(events)
    past = as_of(state, when)
    earlier = [e for e in events if e.published_at <= when]
    if not earlier:
        assert past is None
    else:
        assert comparable(past) == comparable(fold(earlier)[0])


def test_before_the_first_observation_is_none():
    state, _ = fold([ev("a1", "talks", 10), ev("a2", "agreed", 20)])
    assert as_of(state, T0 + timedelta(days=9, hours=23)) is None
    assert as_of(state, T0 + timedelta(days=10)).stage is Stage.TALKS


def test_talks_agreed_ended_answers_each_stage_inside_each_period():
    state, _ = fold([ev("a3", "ended", 300), ev("a1", "talks", 0), ev("a2", "agreed", 100)])
    stages = {day: as_of(state, T0 + timedelta(days=day)).stage for day in (0, 50, 100, 299,
                                                                             300, 900)}
    assert stages == {0: "talks", 50: "talks", 100: "agreed", 299: "agreed", 300: "ended",
                      900: "ended"}
    mid = as_of(state, T0 + timedelta(days=150))
    assert mid.article_count == 2 and [t.stage for t in mid.history] == ["talks", "agreed"]
    assert mid.last_changed == T0 + timedelta(days=100)


def test_the_episode_gap_rule_is_the_one_given():
    state, _ = fold([ev("a1", "agreed", 0), ev("a2", "talks", 40)], Rules(episode_gap_days=30))
    assert (state.stage, state.episode) == (Stage.TALKS, 2)
    assert as_of(state, T0 + timedelta(days=41), Rules(episode_gap_days=30)).episode == 2
    assert as_of(state, T0 + timedelta(days=41), Rules()).episode == 1


def test_states_as_of_leaves_out_what_was_unknown_then():
    early, _ = fold([ev("a1", "talks", 0)])
    late, _ = fold([ev("b1", "agreed", 50, parties=["Honda", "Sony"])])
    assert list(states_as_of([early, late], None, Rules())) == [early, late]
    past = list(states_as_of([early, late], T0 + timedelta(days=10), Rules()))
    assert [s.alliance_id for s in past] == ["honda+nissan"]


def test_company_view_as_of_is_built_like_the_index():
    nissan, _ = fold([ev("a1", "talks", 0), ev("a2", "ended", 30)])
    sony, _ = fold([ev("b1", "agreed", 20, parties=["Honda", "Sony"])])
    view = company_view_of("honda", [as_of(s, T0 + timedelta(days=25)) for s in (nissan, sony)])
    assert view.company == "Honda" and view.alliance_count == 2
    assert view.partners_by_stage == {"talks": ["Nissan"], "agreed": ["Sony"]}
    assert company_view_of("toyota", [nissan, sony]) is None


def test_as_of_parameter():
    assert parse_as_of(None) is None and parse_as_of(" ") is None
    assert parse_as_of("2007-12-31") == datetime(2007, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of("2007-12-31T18:00:00Z") == datetime(2007, 12, 31, 18, tzinfo=UTC)
    assert parse_as_of("2007-12-31T18:00:00") == datetime(2007, 12, 31, 18, tzinfo=UTC)
    with pytest.raises(QueryError, match="as_of must be an ISO date"):
        parse_as_of("end of 2007")
    filters = Filters.from_query({"as_of": "2007-12-31", "company": "Honda"})
    assert filters.as_of == parse_as_of("2007-12-31")
    assert Filters.from_query(filters.params()) == filters
