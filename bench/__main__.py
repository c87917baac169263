"""`python -m bench` (`make bench`): a readable table, then one JSON line of figures.

Figures (all on this machine, with whatever else runs on it):
- pipeline_articles_per_s: published articles / seconds from the first POST to the moment
  the extractor has consumed them all and the aggregator every event they yielded
  (bench/pipeline.py), over the news mix, with the embedded broker;
- latency_ms_p50|p95|p99_at_<rate>: from an article's `fetched_at` to the arrival of the
  AllianceChange it caused at a plain consumer, at a fixed offered load of <rate>
  articles/s; the stream is the news mix with every n-th slot a generated partnership story
  (--latency-partnership-share), so that enough changes happen to estimate a p99; one
  article per request unless --latency-batch; latency_hops_ms_p50_at_<rate> splits the trip
  by the Kafka CreateTime of the record each service produced;
- extractor_articles_per_s / full_parse_articles_per_s: `Extractor.extract_many` in batches
  of 32 vs `nlp.pipe` of the plain model over the same texts, in this process
  (bench/extraction.py), with words/s and the ratio;
- rss_mb_<service>: peak resident memory (VmHWM) of each service process and the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.corpus import Article, news_mix, synthetic_articles
from bench.extraction import measure
from bench.pipeline import Bench
from bench.stats import percentile, rounded
from shared.settings import ExtractorSettings, load

TARGET_ARTICLES_PER_S = 100.0
TARGET_P99_MS = 500.0


def latency_stream(background: list[Article], count: int, share: float,
                   seed: int) -> list[Article]:
    """`count` articles from `background`, every round(1/share)-th replaced by a generated
    partnership story between new companies."""
    if share <= 0:
        return background[:count]
    every = max(1, round(1 / share))
    stories = iter(synthetic_articles(count // every + 1, seed=seed + 1,
                                      partnership_share=1.0, id_prefix="latency"))
    picked, rest = [], iter(background)
    for i in range(count):
        picked.append(next(stories) if i % every == every - 1 else next(rest))
    return picked


def run_pipeline(args: argparse.Namespace, warmup: list[Article],
                 latency_articles: list[Article], throughput_articles: list[Article],
                 console: Console) -> dict[str, Any]:
    """Start the stack (outside any event loop: the broker's start-up runs its own), then
    measure inside one."""
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="radar-bench-"))
    console.print(f"starting broker and services (logs in {run_dir}/logs)")
    with Bench(run_dir) as bench:
        async def measure_all() -> dict[str, Any]:
            try:
                console.print(f"warming up with {len(warmup)} articles")
                await bench.warm_up(warmup)
                console.print(f"latency: {len(latency_articles)} articles at {args.rate:g}/s, "
                              f"{args.latency_batch} per request")
                latency = await bench.latency(latency_articles, args.rate,
                                              batch=args.latency_batch)
                console.print(f"throughput: {len(throughput_articles)} articles, as fast as "
                              "the ingestor takes them")
                throughput = await bench.throughput(throughput_articles)
                return {"latency": latency, "throughput": throughput,
                        "rss": bench.peak_rss_mb()}
            finally:
                await bench.close()

        return asyncio.run(measure_all())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=3000,
                        help="articles for the end-to-end throughput run")
    parser.add_argument("--rate", type=float, default=50.0, help="offered load, articles/s")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--latency-partnership-share", type=float, default=0.1)
    parser.add_argument("--latency-batch", type=int, default=1,
                        help="articles per request in the latency run (1: one at a time)")
    parser.add_argument("--extractor-articles", type=int, default=1000,
                        help="articles for the in-process extractor vs full-parse run")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--only", choices=("all", "extraction", "pipeline"), default="all")
    parser.add_argument("--profile", action="store_true",
                        help="print cProfile's top functions of the extractor run")
    parser.add_argument("--run-dir", help="where the stack's logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    model = load(ExtractorSettings).model

    latency_count = int(args.latency_seconds * args.rate)
    mix, origin = news_mix(latency_count + args.articles, args.seed)
    throughput_articles = mix[latency_count:]
    latency_articles = latency_stream(mix[:latency_count], latency_count,
                                      args.latency_partnership_share, args.seed)
    warmup = synthetic_articles(args.warmup, seed=args.seed + 7, partnership_share=0.5,
                                id_prefix="warmup")
    console.print(f"news mix: {origin}")
    figures: dict[str, Any] = {"corpus": origin}
    table = Table(title="Alliance Radar benchmark", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("note")

    if args.only in ("all", "extraction"):
        texts = throughput_articles[:args.extractor_articles]
        console.print(f"extraction: {len(texts)} articles, extractor then plain nlp.pipe "
                      f"({model})")
        ex, report = measure(texts, model, profile=args.profile)
        figures |= {
            "extractor_articles_per_s": rounded(ex.extractor_articles_per_s),
            "full_parse_articles_per_s": rounded(ex.full_parse_articles_per_s),
            "extractor_words_per_s": rounded(ex.extractor_words_per_s, 0),
            "full_parse_words_per_s": rounded(ex.full_parse_words_per_s, 0),
            "extractor_vs_full_parse": rounded(ex.speedup, 2),
        }
        table.add_row("extractor articles/s", f"{ex.extractor_articles_per_s:,.1f}",
                      f"{ex.articles} articles, {ex.words:,} words, "
                      f"{ex.articles_with_events} with events")
        table.add_row("full parse articles/s", f"{ex.full_parse_articles_per_s:,.1f}",
                      f"plain nlp.pipe of {model}")
        table.add_row("extractor words/s", f"{ex.extractor_words_per_s:,.0f}", "")
        table.add_row("full parse words/s", f"{ex.full_parse_words_per_s:,.0f}", "")
        table.add_row("extractor / full parse", f"{ex.speedup:.2f}x", "speed ratio")
        if report:
            print(report)

    if args.only in ("all", "pipeline"):
        started = time.monotonic()
        out = run_pipeline(args, warmup, latency_articles, throughput_articles, console)
        lat, thr, rss = out["latency"], out["throughput"], out["rss"]
        ms = [s * 1000 for s in lat.seconds_from_fetch]
        ms_http = [s * 1000 for s in lat.seconds_from_request]
        tag = f"{args.rate:g}"
        figures |= {"pipeline_articles_per_s": rounded(thr.articles_per_s),
                    "pipeline_articles": thr.published,
                    **{f"latency_ms_p{q}_at_{tag}": rounded(percentile(ms, q))
                       for q in (50, 95, 99)},
                    f"latency_samples_at_{tag}": len(ms),
                    "latency_articles_per_request": args.latency_batch,
                    f"latency_hops_ms_p50_at_{tag}": {
                        hop.split(":")[0]: rounded(percentile([x * 1000 for x in v], 50))
                        for hop, v in lat.hops.items()},
                    **{f"rss_mb_{name}": rounded(mb) for name, mb in sorted(rss.items())}}
        table.add_row("pipeline articles/s", f"{thr.articles_per_s:,.1f}",
                      f"{thr.published} published of {thr.sent} in {thr.seconds:.1f}s "
                      f"(ingest alone {thr.ingest_articles_per_s:,.0f}/s), "
                      f"{thr.partnership_events} events; target ≥ {TARGET_ARTICLES_PER_S:g}")
        for q in (50, 95, 99):
            table.add_row(f"latency p{q} at {tag}/s", f"{percentile(ms, q):,.0f} ms",
                          f"fetched_at → change; from the HTTP request "
                          f"{percentile(ms_http, q):,.0f} ms"
                          + (f"; target ≤ {TARGET_P99_MS:g}" if q == 99 else ""))
        for hop, seconds in lat.hops.items():
            table.add_row(f"  p50 {hop.split(':')[0]}",
                          f"{percentile([x * 1000 for x in seconds], 50):,.0f} ms",
                          hop.split(": ")[1])
        table.add_row("  p50 broker + fetch",
                      f"{percentile([x * 1000 for x in lat.article_visible], 50):,.0f} ms",
                      "article record → this benchmark's consumer (reference)")
        table.add_row("latency samples", str(len(ms)),
                      f"{lat.sent} sent, {args.latency_batch} per request, achieved "
                      f"{lat.achieved_per_s:.1f}/s")
        for name, mb in sorted(rss.items()):
            table.add_row(f"peak RSS {name}", f"{mb:,.0f} MiB", "VmHWM")
        table.add_row("pipeline run", f"{time.monotonic() - started:.0f} s", "wall clock")
        figures["targets_met"] = {
            "pipeline_articles_per_s": thr.articles_per_s >= TARGET_ARTICLES_PER_S,
            f"latency_ms_p99_at_{tag}": bool(ms) and percentile(ms, 99) <= TARGET_P99_MS}

    console.print(table)
    print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
