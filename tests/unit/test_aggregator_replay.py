"""`radar replay` logic without Kafka: app ids, catch-up condition, view comparison."""

from datetime import UTC, datetime

from services.cli.replay import caught_up, diff_views, replay_app_id


def row(alliance_id: str, stage: str, updated_at: str = "2024-01-01T00:00:00Z") -> dict:
    return {"alliance_id": alliance_id, "stage": stage, "article_count": 1,
            "updated_at": updated_at}


def test_each_replay_gets_a_new_app_id():
    assert replay_app_id(datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)) == \
        "radar-aggregator-replay-20240506-070809"
    assert replay_app_id().startswith("radar-aggregator-replay-")


def test_caught_up_needs_every_partition_at_or_past_its_target():
    targets = {0: 5, 1: 0, 2: 3}
    assert caught_up({0: 5, 1: None, 2: 4}, targets)
    assert not caught_up({0: 4, 1: None, 2: 4}, targets)
    assert not caught_up({0: 5, 1: None}, targets)  # never committed on 2
    assert caught_up({}, {0: 0})


def test_views_compare_without_the_wall_clock():
    live = [row("a+b", "talks"), row("c+d", "agreed")]
    assert diff_views(live, [row("c+d", "agreed", "2030-01-01T00:00:00Z"),
                             row("a+b", "talks")]) == []
    rebuilt = [row("a+b", "agreed"), row("e+f", "rumored")]
    assert diff_views(live, rebuilt) == ["c+d: only in the live view",
                                         "e+f: only in the rebuilt view",
                                         "a+b: differs in stage"]
