"""The extractor pool (two worker processes) gives exactly what one process gives, on the 246
labelled Reuters TRAIN development articles (tests/data/reuters_train). Slow-ish: it parses
them twice and loads the pipeline in three processes."""

import json
from pathlib import Path

from services.extractor.pipeline import Extractor
from services.extractor.workers import ExtractorPool, PipelineSpec
from services.ingestor.sources import article_from_mapping

DATA = Path(__file__).resolve().parents[1] / "data" / "reuters_train" / "articles.jsonl"


def test_pool_output_equals_single_process_output() -> None:
    articles = [article_from_mapping(json.loads(line), where="reuters", default_source="Reuters")
                for line in DATA.read_text().splitlines() if line.strip()]
    assert len(articles) == 246
    single = Extractor.load().extract_outcomes(articles)
    with ExtractorPool(PipelineSpec(), processes=2) as pool:
        assert len(pool.pids) == 2
        pooled = []
        for i in range(0, len(articles), 32):  # the service's batches
            pooled.extend(pool.extract_sync(articles[i:i + 32]))
    assert pooled == single
    assert sum(bool(events) for _, events in single) > 10  # the comparison has substance
    assert sum(not parsed for parsed, _ in single) > 10  # and gated-out articles
