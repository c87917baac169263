"""Offline extraction and scoring: `radar extract` and `radar eval`, no broker needed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from services.extractor.evaluation import (
    STAGES,
    Calibration,
    Event,
    Scores,
    calibration,
    load_gold_file,
    parties_match,
    score,
)
from services.extractor.pipeline import Extractor
from services.ingestor.sources import InputError, parse_jsonl
from shared.contracts import ArticleEvent, PartnershipEvent


def read_articles(path: Path) -> Iterator[ArticleEvent | InputError]:
    """JSONL lines {"id"|"article_id", "title", "text", "published_at", "source", "url"}
    (extra keys ignored), read by the ingestor's one article mapper; the text is used as
    given, so evidence offsets point into it. A bad line is an `InputError` naming it."""
    opener = sys.stdin if str(path) == "-" else path.open(encoding="utf-8", errors="replace")
    with opener as fh:
        yield from parse_jsonl(fh, name="stdin" if str(path) == "-" else path.name,
                               default_source="unknown", as_given=True)


def _report_bad(items: list[ArticleEvent | InputError], err: Console) -> list[ArticleEvent]:
    for bad in (b for b in items if isinstance(b, InputError)):
        err.print(f"[yellow]skipped[/yellow] {bad.where}: {bad.message}")
    return [a for a in items if isinstance(a, ArticleEvent)]


def run_extraction(extractor: Extractor, path: Path, out: IO[str] | None, err: Console,
                   batch_size: int = 64) -> dict[str, list[PartnershipEvent]]:
    """Extract every article of a JSONL file; write events as JSON lines to `out`."""
    articles = _report_bad(list(read_articles(path)), err)
    results: dict[str, list[PartnershipEvent]] = {}
    progress = Progress("extracting", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, disable=len(articles) < 50 or not err.is_terminal)
    with progress:
        task = progress.add_task("extract", total=len(articles))
        for start in range(0, len(articles), batch_size):
            batch = articles[start:start + batch_size]
            for article, events in zip(batch, extractor.extract_many(batch), strict=True):
                results[article.article_id] = events
                if out is not None:
                    for event in events:
                        out.write(event.model_dump_json() + "\n")
            progress.advance(task, len(batch))
    return results


def predictions(results: dict[str, list[PartnershipEvent]]) -> dict[str, list[Event]]:
    return {aid: [Event(list(e.parties), e.stage.value) for e in events]
            for aid, events in results.items()}


def evaluate(extractor: Extractor, gold_path: Path, articles_path: Path,
             err: Console) -> Scores:
    results = run_extraction(extractor, articles_path, None, err)
    return score(load_gold_file(gold_path), predictions(results))


def read_valid(path: Path, err: Console) -> list[ArticleEvent]:
    return _report_bad(list(read_articles(path)), err)


def evaluate_with_calibration(extractor: Extractor, gold: dict[str, list[Event]],
                              articles: list[ArticleEvent], batch_size: int = 64
                              ) -> tuple[Scores, Calibration]:
    """Scores of the events the extractor emits (at its threshold), and the calibration of
    its probabilities over every candidate party set it scored: outcome 1 when the set is a
    gold event of the article."""
    predicted: dict[str, list[Event]] = {}
    probs: list[float] = []
    outcomes: list[bool] = []
    for start in range(0, len(articles), batch_size):
        batch = articles[start:start + batch_size]
        for article, found in zip(batch, extractor.scored(batch), strict=True):
            kept = extractor.decider.select(found) if extractor.decider else []
            predicted[article.article_id] = [Event(list(f.parties), f.stage) for f in kept]
            for f in found:
                probs.append(f.probability)
                outcomes.append(any(parties_match(g.parties, list(f.parties))
                                    for g in gold.get(article.article_id, [])))
    return score(gold, predicted), calibration(probs, outcomes)


def calibration_table(cal: Calibration) -> Table:
    table = Table(title=f"Calibration of confidence (Brier {cal.brier:.4f} over {cal.count} "
                        "candidate party sets)")
    for col in ("confidence", "sets", "mean confidence", "share that are gold events"):
        table.add_column(col, justify="right")
    for lo, hi, n, p, o in cal.bins:
        table.add_row(f"{lo:.1f}-{hi:.1f}", str(n), f"{p:.3f}" if n else "",
                      f"{o:.3f}" if n else "")
    return table


def score_table(s: Scores, title: str) -> Table:
    table = Table(title=title)
    for col in ("measure", "precision", "recall", "F1", "count"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    dp, dr, df = s.detection
    sp, sr, sf = s.strict_prf
    table.add_row("detection (party sets)", f"{dp:.3f}", f"{dr:.3f}", f"{df:.3f}",
                  f"{s.detected} of {s.gold} gold, {s.predicted} predicted")
    table.add_row("strict (+ stage)", f"{sp:.3f}", f"{sr:.3f}", f"{sf:.3f}",
                  f"{s.strict} of {s.gold} gold")
    table.add_row("no-event articles with predictions", "", "", f"{s.empty_rate:.1%}",
                  f"{s.empty_with_predictions} of {s.empty_articles}")
    return table


def confusion_table(s: Scores) -> Table:
    table = Table(title="Stage confusion (rows gold, columns predicted; detected events)")
    table.add_column("gold \\ predicted")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    for g in STAGES:
        table.add_row(g, *(str(s.confusion.get((g, p), "")) for p in STAGES))
    return table
