"""Extraction quality on the labelled sets under tests/data, as regression floors.

The floors sit just under the scores measured when they were set (see the README's
extraction section); raising quality should raise them, never lower them silently.
"""

from pathlib import Path

import pytest
from rich.console import Console

from services.cli.offline import evaluate
from services.extractor.pipeline import Extractor

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load()


def scores(extractor: Extractor, name: str):
    return evaluate(extractor, DATA / name / "gold.jsonl", DATA / name / "articles.jsonl",
                    Console(stderr=True, quiet=True))


def test_dev_set_floors(extractor):
    s = scores(extractor, "dev")
    assert s.detection[2] >= 0.90, s.as_dict()
    assert s.strict_prf[2] >= 0.88, s.as_dict()
    assert s.empty_rate <= 0.03, s.as_dict()


def test_reuters_train_sample_floors(extractor):
    s = scores(extractor, "reuters_train")
    assert s.detection[2] >= 0.61, s.as_dict()
    assert s.strict_prf[2] >= 0.51, s.as_dict()
    assert s.empty_rate <= 0.15, s.as_dict()


def test_confidence_means_something(extractor):
    """Events above the median confidence are at least as precise as those below it."""
    from services.cli.offline import predictions, run_extraction
    from services.extractor.evaluation import load_gold_file, score

    gold = load_gold_file(DATA / "reuters_train" / "gold.jsonl")
    results = run_extraction(extractor, DATA / "reuters_train" / "articles.jsonl", None,
                             Console(stderr=True, quiet=True))
    confidences = sorted(e.confidence for evs in results.values() for e in evs)
    median = confidences[len(confidences) // 2]
    high = {k: [e for e in v if e.confidence >= median] for k, v in results.items()}
    low = {k: [e for e in v if e.confidence < median] for k, v in results.items()}
    p_high = score(gold, predictions(high)).detection[0]
    p_low = score(gold, predictions(low)).detection[0]
    assert p_high >= p_low, (p_high, p_low)
