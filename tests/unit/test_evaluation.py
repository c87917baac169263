from services.extractor.evaluation import Event, load_gold, names_match, parties_match, score


def test_name_matching_follows_the_guide():
    assert names_match("Nissan", "Nissan Motor Co.")
    assert names_match("General Motors|GM|General Motors Corp", "GM")
    assert names_match("Renault", "Renault SA")
    assert not names_match("Honda", "Hyundai")
    assert not names_match("General Motors", "Motors Liquidation Holdings Ltd")


def test_party_sets_need_same_size_and_distinct_matches():
    assert parties_match(["Nissan", "Renault"], ["Renault SA", "Nissan Motor"])
    assert not parties_match(["Nissan", "Renault"], ["Nissan", "Renault", "GM"])
    assert not parties_match(["Nissan", "Nissan Motor"], ["Nissan", "Honda"])


def test_scores_detection_strict_and_empty_articles():
    gold = load_gold([
        '{"article_id": "a", "events": [{"parties": ["Nissan", "Chrysler"], "stage": "talks"},'
        ' {"parties": ["Nissan", "Renault"], "stage": "active"}]}',
        '{"article_id": "b", "events": []}',
        '{"article_id": "c", "events": []}',
    ])
    pred = {"a": [Event(["Chrysler", "Nissan"], "talks"), Event(["Nissan", "Renault"], "agreed"),
                  Event(["GM", "Ford"], "talks")],
            "b": [Event(["X", "Y"], "rumored")]}
    s = score(gold, pred)
    assert (s.gold, s.predicted, s.detected, s.strict) == (2, 4, 2, 1)
    assert s.detection == (0.5, 1.0, 2 / 3)
    assert s.empty_rate == 0.5
    assert s.confusion[("active", "agreed")] == 1
    kinds = sorted(e["kind"] for e in s.errors)
    assert kinds == ["spurious", "spurious", "wrong_stage"]
