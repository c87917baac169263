from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.state import Rules, apply, next_stage
from shared.contracts import Evidence, PartnershipEvent, Stage

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PAIR = ["Honda", "Nissan"]


def ev(article: str, stage: Stage | str, day: int, parties=PAIR) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.7,
        published_at=T0 + timedelta(days=day),
        evidence=[Evidence(sentence=f"{article} says {stage}", start=0, end=10)])


def fold(events, rules=Rules()):
    state, changes = None, []
    for e in events:
        new, change = apply(state, e, rules)
        state = new or state
        if change:
            changes.append(change)
    return state, changes


def test_new_alliance_emits_change_with_null_previous():
    state, changes = fold([ev("a1", "rumored", 0)])
    assert state.stage is Stage.RUMORED
    assert [(c.previous_stage, c.stage) for c in changes] == [(None, Stage.RUMORED)]


def test_progression_emits_one_change_per_step():
    state, changes = fold([ev("a1", "rumored", 0), ev("a2", "talks", 5), ev("a3", "agreed", 9),
                           ev("a4", "active", 30)])
    assert state.stage is Stage.ACTIVE
    assert [c.previous_stage for c in changes] == [None, "rumored", "talks", "agreed"]
    assert [t.stage for t in state.history] == ["rumored", "talks", "agreed", "active"]
    assert state.article_count == 4


def test_weaker_newer_news_does_not_regress():
    state, changes = fold([ev("a1", "agreed", 0), ev("a2", "rumored", 3)])
    assert state.stage is Stage.AGREED
    assert len(changes) == 1
    assert state.article_count == 2  # it still counts as support


def test_older_article_arriving_late_does_not_reset_newer_state():
    # 2024 talks known; a 2007 rumour arrives afterwards: history grows, stage stays.
    late = ev("old", "rumored", -17 * 365)
    state, changes = fold([ev("new", "talks", 0), late])
    assert state.stage is Stage.TALKS
    assert len(changes) == 1
    assert state.first_seen == late.published_at
    assert any(o.article_id == "old" for o in state.observations)


def test_failed_closes_episode_and_later_talks_revive_it():
    state, changes = fold([ev("a1", "talks", 0), ev("a2", "failed", 10), ev("a3", "talks", 40)])
    assert state.stage is Stage.TALKS
    assert state.episode == 2
    assert [(c.previous_stage, c.stage, c.episode) for c in changes][-1] == \
        ("failed", "talks", 2)


def test_ended_from_active():
    state, _ = fold([ev("a1", "active", 0), ev("a2", "ended", 10)])
    assert state.stage is Stage.ENDED


def test_long_silence_opens_new_episode_for_lower_stage():
    rules = Rules(episode_gap_days=365)
    state, changes = fold([ev("a1", "talks", 0), ev("a2", "rumored", 800)], rules)
    assert (state.stage, state.episode) == (Stage.RUMORED, 2)
    assert changes[-1].previous_stage is Stage.TALKS


def test_duplicate_event_changes_nothing():
    e = ev("a1", "talks", 0)
    state, _ = apply(None, e)
    again, change = apply(state, e)
    assert again is None and change is None


def test_change_ids_are_deterministic():
    _, first = fold([ev("a1", "rumored", 0), ev("a2", "talks", 1)])
    _, second = fold([ev("a1", "rumored", 0), ev("a2", "talks", 1)])
    assert [c.change_id for c in first] == [c.change_id for c in second]
    assert len({c.change_id for c in first}) == 2


def test_history_and_observations_are_bounded():
    rules = Rules(history_limit=3, observation_limit=5)
    stages = ["rumored", "talks", "failed"] * 4
    state, _ = fold([ev(f"a{i}", s, i) for i, s in enumerate(stages)], rules)
    assert len(state.history) <= 3
    assert len(state.observations) <= 5


def test_next_stage_table():
    assert next_stage(None, Stage.TALKS, False) == (Stage.TALKS, True)
    assert next_stage(Stage.TALKS, Stage.RUMORED, False) == (Stage.TALKS, False)
    assert next_stage(Stage.TALKS, Stage.AGREED, False) == (Stage.AGREED, False)
    assert next_stage(Stage.AGREED, Stage.FAILED, False) == (Stage.FAILED, False)
    assert next_stage(Stage.FAILED, Stage.ENDED, False) == (Stage.FAILED, False)
    assert next_stage(Stage.ENDED, Stage.RUMORED, False) == (Stage.RUMORED, True)


def comparable(state):
    return state.model_dump(exclude={"updated_at"})


event_lists = st.lists(
    st.tuples(st.sampled_from(list(Stage)), st.integers(0, 2000)),
    min_size=1, max_size=8,
).map(lambda items: [ev(f"a{i}", s, d) for i, (s, d) in enumerate(items)])


@settings(max_examples=150, deadline=None)
@given(events=event_lists, data=st.data())
def test_any_arrival_order_gives_the_same_final_state(events, data):
    shuffled = data.draw(st.permutations(events))
    with_duplicates = shuffled + data.draw(st.lists(st.sampled_from(events), max_size=3))
    first, _ = fold(events)
    second, _ = fold(with_duplicates)
    assert comparable(first) == comparable(second)


def test_state_is_complete_union_of_its_reports():
    a1 = ev("a1", "rumored", 0).model_copy(update={"areas": ["batteries"], "source": "Wire A",
                                                   "confidence": 0.4})
    a2 = ev("a2", "talks", 10).model_copy(update={"areas": ["software", "batteries"],
                                                  "source": "Wire B", "confidence": 0.6})
    a3 = ev("a3", "talks", 12).model_copy(update={"source": "Wire A", "confidence": 0.9})
    state, _ = fold([a2, a3, a1])
    assert state.parties == PAIR and state.alliance_id == "honda+nissan"
    assert state.areas == ["batteries", "software"]
    assert state.sources == ["Wire A", "Wire B"]
    assert state.first_seen == a1.published_at and state.last_changed == a2.published_at
    assert state.confidence == 0.9  # best support of the current stage, not of the rumour
    assert state.article_count == 3
    assert [(t.stage, t.article_id, t.evidence[0].sentence) for t in state.history] == [
        ("rumored", "a1", "a1 says rumored"), ("talks", "a2", "a2 says talks")]


def test_revivals_after_ended_or_failed_open_new_episodes_at_any_open_stage():
    state, changes = fold([ev("a1", "active", 0), ev("a2", "ended", 30),
                           ev("a3", "agreed", 60), ev("a4", "failed", 90),
                           ev("a5", "rumored", 120)])
    assert (state.stage, state.episode) == (Stage.RUMORED, 3)
    assert [(c.previous_stage, c.stage, c.episode) for c in changes] == [
        (None, "active", 1), ("active", "ended", 1), ("ended", "agreed", 2),
        ("agreed", "failed", 2), ("failed", "rumored", 3)]


def test_old_closing_news_arriving_late_enriches_history_but_is_no_change():
    # 2024 talks known; a 2007 "failed" arrives afterwards: the 2024 stage stands, no
    # change is emitted, and the history now shows the old episode before it.
    old = ev("old", "failed", -17 * 365)
    state, changes = fold([ev("new", "talks", 0), old])
    assert state.stage is Stage.TALKS and len(changes) == 1
    assert [(t.stage, t.episode) for t in state.history] == [("failed", 1), ("talks", 2)]
    assert state.first_seen == old.published_at


@settings(max_examples=150, deadline=None)
@given(events=event_lists, data=st.data())
def test_a_change_is_emitted_exactly_when_the_stage_changes(events, data):
    arrival = data.draw(st.permutations(events))
    arrival += data.draw(st.lists(st.sampled_from(events), max_size=2))
    state = None
    for e in arrival:
        new, change = apply(state, e)
        before = state.stage if state else None
        after = (new or state).stage
        if after != before:
            assert change is not None
            assert (change.previous_stage, change.stage) == (before, after)
            assert change.event_id in {t.event_id for t in new.history}
        else:
            assert change is None
        state = new or state


def test_article_url_and_cue_are_carried_into_history_and_changes():
    text = "Honda and Nissan are in talks."
    event = PartnershipEvent(
        event_id="e1", article_id="a1", parties=PAIR, stage="talks", confidence=0.7,
        published_at=T0, article_url="https://news.example/a1",
        evidence=[Evidence(sentence=text, start=0, end=len(text), cue_start=21,
                           cue_end=29)])
    state, change = apply(None, event)
    assert state.observations[0].article_url == "https://news.example/a1"
    [transition] = state.history
    assert transition.article_url == change.article_url == "https://news.example/a1"
    assert transition.evidence[0].cue == change.evidence[0].cue == "in talks"
