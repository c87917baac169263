"""Extraction quality, led by the frozen held-out slice of the labelled corpus.

The held-out figures are pinned exactly (corpus/reuters21578/heldout_scores.json: a changed
model must come with its new figures) and floored just under what was measured; nobody reads
the held-out errors. The dev set (written for this project) and the shared seeds are checked
too, as floors on what the model does with text it was not trained on.
"""

import json
from pathlib import Path

import pytest
from rich.console import Console

from services.cli.offline import evaluate, evaluate_with_calibration
from services.extractor.pipeline import Extractor
from services.extractor.training.corpus import CORPUS, heldout_part, load

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared"
PINNED = json.loads((CORPUS / "heldout_scores.json").read_text())


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load()


@pytest.fixture(scope="module")
def heldout(extractor):
    items = heldout_part(load())
    gold = {i.article.article_id: list(i.events) for i in items}
    return evaluate_with_calibration(extractor, gold, [i.article for i in items])


def test_heldout_scores_are_the_pinned_ones(extractor, heldout):
    scores, cal = heldout
    got = scores.as_dict()
    assert extractor.version == PINNED["extractor_version"]
    assert (got["gold_events"], got["predicted_events"]) == (PINNED["gold_events"],
                                                             PINNED["predicted_events"])
    for kind in ("detection", "strict"):
        assert {k: round(v, 4) for k, v in got[kind].items()} == PINNED[kind]
    assert got["no_event_articles_with_predictions"] == \
        PINNED["no_event_articles_with_predictions"]
    assert cal.brier == PINNED["brier"]


def test_heldout_floors(heldout):
    scores, cal = heldout
    assert scores.detection[2] >= 0.47, scores.as_dict()
    assert scores.strict_prf[2] >= 0.39, scores.as_dict()
    assert scores.empty_rate <= 0.015, scores.as_dict()
    assert cal.brier <= 0.062


def test_confidence_means_something(heldout):
    """Calibrated probabilities: among every scored party set, the share that are gold
    events rises with confidence (top half of the scale well above the bottom tenth)."""
    _, cal = heldout
    low = cal.bins[0]
    high = [b for b in cal.bins if b[0] >= 0.5 and b[2]]
    observed_high = sum(b[2] * b[4] for b in high) / sum(b[2] for b in high)
    assert low[4] <= 0.05 and observed_high >= 0.6, cal.as_dict()


def test_dev_set_floor(extractor):
    s = evaluate(extractor, DATA / "dev" / "gold.jsonl", DATA / "dev" / "articles.jsonl",
                 Console(stderr=True, quiet=True))
    assert s.detection[2] >= 0.55, s.as_dict()
    assert s.empty_rate <= 0.03, s.as_dict()


@pytest.mark.skipif(not (SHARED / "seeds").is_dir(), reason="../shared is not beside the repo")
def test_seed_floor(extractor, tmp_path):
    rows = [{"id": p.stem, "title": "", "text": p.read_text(), "source": "seed",
             "published_at": "2023-07-01T00:00:00Z"}
            for p in sorted((SHARED / "seeds").glob("*.txt"))]
    articles = tmp_path / "seeds.jsonl"
    articles.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = evaluate(extractor, SHARED / "gold" / "seeds.jsonl", articles,
                 Console(stderr=True, quiet=True))
    # 2 of 8 found, both right: Nissan-Chrysler and Honda-Nissan (its stage wrong: rumored
    # read as active). Model 6+m4d527bb060 (second threshold for an article's other sets,
    # party-name profile features); the one before found only Honda-Nissan (Nissan-Chrysler
    # 0.37 against its threshold 0.38). Measured costs of models chosen by cross-validation
    # on wire copy, not tuned away on these stories.
    assert s.detected >= 2 and s.detection[0] == 1.0, s.as_dict()
