"""The extractor pool's pure parts: dealing a batch over workers and putting it back."""

import pytest

from services.extractor.workers import deal, default_processes, gather_dealt


@pytest.mark.parametrize(("count", "ways"), [(0, 2), (1, 2), (5, 2), (32, 2), (7, 4), (3, 8)])
def test_deal_covers_every_index_once_in_at_most_ways_hands(count: int, ways: int) -> None:
    hands = deal(count, ways)
    assert len(hands) <= ways and all(hands)
    assert sorted(i for h in hands for i in h) == list(range(count))
    # round-robin: hand sizes differ by at most one
    assert not hands or max(map(len, hands)) - min(map(len, hands)) <= 1


def test_gather_dealt_restores_input_order() -> None:
    hands = deal(7, 3)
    results = [[(i % 2 == 0, [f"e{i}"]) for i in hand] for hand in hands]
    gathered = gather_dealt(hands, results, 7)  # type: ignore[arg-type]
    assert [events for _, events in gathered] == [[f"e{i}"] for i in range(7)]
    assert [parsed for parsed, _ in gathered] == [i % 2 == 0 for i in range(7)]


def test_gather_dealt_refuses_a_short_answer() -> None:
    hands = deal(4, 2)
    with pytest.raises(RuntimeError, match="returned 1 outcomes for 2"):
        gather_dealt(hands, [[(True, [])], [(True, []), (True, [])]], 4)


def test_default_processes_is_at_least_one() -> None:
    assert default_processes() >= 1
