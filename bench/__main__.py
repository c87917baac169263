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
- rss_mb_<service>: peak resident memory (VmHWM) of each service process and the broker
  (extractor_worker: the largest extractor worker process);
- pool_articles_per_s: the extractor pool (worker processes, one per core) over the same
  texts as the extractor; pipeline_vs_full_parse: pipeline articles/s over the full parse's,
  both medians of this invocation;
- latency_ms_p99_at_capacity80: p99 at 80 % of capacity_paced_per_s, the rate the stack
  kept up with when offered one article per request at the batch capacity
  (capacity80_basis; on a fresh stack unless --capacity-same-stack or --quick:
  capacity80_fresh_stack); cpu_ms_per_article_* (the bench's own process too),
  queue_peak_at_*, drain_s_at_*, kept_up_per_s_at_* and latency_hops_* per run;
- scaling_articles_per_s: pipeline throughput with 1, 2, 4 extractor processes (each a fresh
  stack).

Every throughput figure is the median of --repeats runs in this invocation, with `_min` and
`_max` keys beside it. `--quick` (`make bench QUICK=1`) is the day-to-day size: one pipeline
run, small streams, no scaling, under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

from bench.corpus import Article, news_mix, synthetic_articles
from bench.extraction import measure
from bench.pipeline import Bench
from bench.stats import bucket_quantile, percentile, rounded, shown, spread, spread_figures
from shared.settings import ExtractorSettings, load

#: The goals of issue 12 on the 2-core development machine; `targets_met` in the JSON line
#: checks each figure the run measured against them.
TARGET_ARTICLES_PER_S = 400.0
TARGET_PIPELINE_VS_FULL_PARSE = 25.0
TARGET_EXTRACTOR_VS_FULL_PARSE = 30.0
TARGET_P99_MS = 250.0
TARGET_LATENCY_SAMPLES = 1000
TARGET_P99_MS_AT_CAPACITY = 1000.0
TARGET_RSS_MB = 400.0


def targets_met(figures: dict[str, Any], tag: str, latency_samples: int) -> dict[str, bool]:
    """Each goal whose figure this run measured: met or not. The p99 at the stream rate
    counts only over at least TARGET_LATENCY_SAMPLES samples."""
    met: dict[str, bool] = {}
    if (value := figures.get("pipeline_articles_per_s")) is not None:
        met["pipeline_articles_per_s"] = value >= TARGET_ARTICLES_PER_S
    if (value := figures.get("pipeline_vs_full_parse")) is not None:
        met["pipeline_vs_full_parse"] = value >= TARGET_PIPELINE_VS_FULL_PARSE
    if (value := figures.get("extractor_vs_full_parse")) is not None:
        met["extractor_vs_full_parse"] = value >= TARGET_EXTRACTOR_VS_FULL_PARSE
    if (value := figures.get(f"latency_ms_p99_at_{tag}")) is not None:
        met[f"latency_ms_p99_at_{tag}"] = (latency_samples >= TARGET_LATENCY_SAMPLES
                                           and value <= TARGET_P99_MS)
    if (value := figures.get("latency_ms_p99_at_capacity80")) is not None:
        met["latency_ms_p99_at_capacity80"] = value <= TARGET_P99_MS_AT_CAPACITY
    elif "capacity80_error" in figures:  # the stack did not keep up at all
        met["latency_ms_p99_at_capacity80"] = False
    rss = [v for k, v in figures.items() if k.startswith("rss_mb_") and v is not None]
    if rss:
        met["peak_rss_mb"] = max(rss) <= TARGET_RSS_MB
    return met


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


def latency_figures(lat: Any, tag: str) -> tuple[dict[str, Any], list[float], list[float]]:
    ms = [s * 1000 for s in lat.seconds_from_fetch]
    ms_http = [s * 1000 for s in lat.seconds_from_request]
    cpu = {name: rounded(seconds * 1000 / max(lat.sent, 1), 2)
           for name, seconds in sorted(lat.cpu_seconds.items())}
    return ({**{f"latency_ms_p{q}_at_{tag}": rounded(percentile(ms, q)) for q in (50, 95, 99)},
             f"latency_samples_at_{tag}": len(ms),
             # CPU ms per article sent, per process, during the run
             f"cpu_ms_per_article_at_{tag}": cpu,
             # the extractor's handling of one poll (its share of the extractor hop)
             **{f"extractor_batch_ms_p{q}_at_{tag}":
                rounded(bucket_quantile(lat.extractor_batch_seconds, q) * 1000)
                for q in (50, 99)},
             # each hop's share of the trip, and where the queue stood while it was offered
             **{f"latency_hops_ms_p{q}_at_{tag}": {
                 hop.split(":")[0]: rounded(percentile([x * 1000 for x in v], q))
                 for hop, v in lat.hops.items()} for q in (50, 99)},
             f"queue_peak_at_{tag}": dict(zip(("extractor", "aggregator"),
                                              map(rounded, lat.queue_peak()), strict=True)),
             f"drain_s_at_{tag}": rounded(lat.drain_seconds, 2),
             f"kept_up_per_s_at_{tag}": rounded(lat.kept_up_per_s)}, ms, ms_http)


def run_pipeline(args: argparse.Namespace, warmup: list[Article],
                 latency_articles: list[Article], throughput_runs: list[list[Article]],
                 capacity_pool: list[Article], console: Console) -> dict[str, Any]:
    """Start the stack (outside any event loop: the broker's start-up runs its own), then
    measure inside one: latency at the fixed rate, throughput `len(throughput_runs)` times
    (fresh articles each time: the ingestor drops repeats); then, on a fresh stack unless
    --capacity-same-stack, the paced capacity and the latency at 80 % of it
    (`capacity_runs`)."""
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="radar-bench-"))
    console.print(f"starting broker and services (logs in {run_dir}/logs)")
    fresh = not args.capacity_same_stack
    with Bench(run_dir) as bench:
        async def measure_all() -> dict[str, Any]:
            try:
                console.print(f"warming up with {len(warmup)} articles")
                await bench.warm_up(warmup)
                console.print(f"latency: {len(latency_articles)} articles at {args.rate:g}/s, "
                              f"{args.latency_batch} per request")
                latency = await bench.latency(latency_articles, args.rate,
                                              batch=args.latency_batch)
                throughputs = []
                for n, articles in enumerate(throughput_runs, 1):
                    console.print(f"throughput {n}/{len(throughput_runs)}: {len(articles)} "
                                  "articles, as fast as the ingestor takes them")
                    throughputs.append(await bench.throughput(articles))
                out = {"latency": latency, "throughputs": throughputs}
                if not fresh:
                    out |= await capacity_runs(args, bench, throughputs, capacity_pool,
                                               console)
                return out | {"rss": bench.peak_rss_mb()}
            finally:
                await bench.close()

        out = asyncio.run(measure_all())
    if fresh and args.capacity_seconds > 0 and out["throughputs"]:
        console.print("a fresh stack for the capacity runs (every earlier phase's records "
                      "would make each fetch dearer on the embedded broker)")
        with Bench(run_dir / "capacity") as bench:
            async def capacity_only() -> dict[str, Any]:
                try:
                    await bench.warm_up(warmup)
                    return (await capacity_runs(args, bench, out["throughputs"],
                                                capacity_pool, console)
                            ) | {"rss": bench.peak_rss_mb()}
                finally:
                    await bench.close()

            more = asyncio.run(capacity_only())
        rss = {name: max(mb, more["rss"].get(name, mb)) for name, mb in out["rss"].items()}
        out |= more | {"rss": rss}
    return out


#: What a stack that falls over at a load raises in the benchmark.
FAILED = (httpx.HTTPError, aiohttp.ClientError, TimeoutError, RuntimeError)


async def capacity_runs(args: argparse.Namespace, bench: Bench, throughputs: list[Any],
                        pool: list[Article], console: Console) -> dict[str, Any]:
    """The capacity under paced arrivals, then the latency at --capacity-share of it.

    The throughput runs post 100 articles to a request and the stack drains them in big
    batches; the latency runs offer one article per request, which costs the stack (and
    this benchmark) about twice the CPU per article. So the capacity the 80 % run is based
    on is measured the way that run offers load: --capacity-probe-seconds of one article per
    request at the batch capacity, and the rate at which the extractor consumed them over
    the second half of that window (`kept_up`: the offered rate when the stack keeps up, the
    paced capacity when it does not), capped at the batch capacity."""
    batch = spread([t.articles_per_s for t in throughputs])[0]
    out: dict[str, Any] = {"at_capacity": None, "capacity_error": None, "probe": None,
                           "capacity_batch_per_s": batch, "capacity_per_s": batch}
    if args.capacity_seconds <= 0 or batch != batch:
        return out
    at = 0
    try:
        if args.capacity_probe_seconds > 0:
            count = min(len(pool), int(batch * args.capacity_probe_seconds))
            console.print(f"paced capacity: {count} articles at {batch:.1f}/s, one per "
                          "request")
            probe = await bench.latency(pool[:count], batch)
            at = count
            out["probe"] = probe
            if probe.kept_up_per_s == probe.kept_up_per_s:
                out["capacity_per_s"] = min(batch, probe.kept_up_per_s)
        rate = args.capacity_share * out["capacity_per_s"]
        count = min(len(pool) - at, int(rate * args.capacity_seconds))
        console.print(f"latency at {args.capacity_share:.0%} of capacity: {count} articles at "
                      f"{rate:.1f}/s")
        out["at_capacity"] = await bench.latency(pool[at:at + count], rate)
    except FAILED as exc:
        # A stack that falls over at this load is a result, not a reason to throw away the
        # figures measured before it.
        out["capacity_error"] = f"{type(exc).__name__}: {exc}"[:300]
        console.print(f"[red]latency at capacity failed:[/red] {out['capacity_error']}")
    return out


def run_scaling(args: argparse.Namespace, warmup: list[Article], articles: list[Article],
                console: Console) -> dict[int, float]:
    """Pipeline throughput with 1, 2, 4 ... extractor processes, a fresh stack for each."""
    out: dict[int, float] = {}
    base = Path(args.run_dir or tempfile.mkdtemp(prefix="radar-bench-scaling-"))
    for processes in args.scaling:
        console.print(f"scaling: {processes} extractor process(es), {len(articles)} articles")
        with Bench(base / f"processes-{processes}",
                   env={"RADAR_EXTRACTOR_PROCESSES": str(processes)}) as bench:
            async def one() -> float:
                try:
                    await bench.warm_up(warmup)
                    return (await bench.throughput(articles)).articles_per_s
                finally:
                    await bench.close()

            out[processes] = asyncio.run(one())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=2000,
                        help="articles per end-to-end throughput run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per throughput figure (the median is reported)")
    parser.add_argument("--rate", type=float, default=50.0, help="offered load, articles/s")
    parser.add_argument("--latency-seconds", type=float, default=70.0,
                        help="length of the latency run (70 s at 50/s with half partnership "
                        "stories gives over 1,000 samples)")
    parser.add_argument("--latency-partnership-share", type=float, default=0.5,
                        help="share of generated partnership stories in the latency stream "
                        "(each yields a change: the latency samples)")
    parser.add_argument("--latency-batch", type=int, default=1,
                        help="articles per request in the latency run (1: one at a time)")
    parser.add_argument("--capacity-share", type=float, default=0.8,
                        help="offered load of the second latency run, as a share of the "
                        "measured pipeline throughput")
    parser.add_argument("--capacity-partnership-share", type=float, default=0.1,
                        help="share of partnership stories in that run: close to the news "
                        "mix the capacity was measured on (stories are parsed, most news "
                        "is not)")
    parser.add_argument("--capacity-seconds", type=float, default=20.0,
                        help="length of that run (0: skip it)")
    parser.add_argument("--capacity-probe-seconds", type=float, default=15.0,
                        help="length of the paced run at the batch capacity that measures "
                        "the capacity under one article per request (0: base the 80 %% run "
                        "on the batch capacity, as before)")
    parser.add_argument("--capacity-same-stack", action="store_true",
                        help="run the capacity runs on the stack of the earlier phases "
                        "(default: a fresh one, whose broker holds none of their records)")
    parser.add_argument("--scaling", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=[1, 2, 4],
                        help="extractor process counts to measure throughput with (a fresh "
                        "stack each; empty: skip)")
    parser.add_argument("--extractor-articles", type=int, default=600,
                        help="articles for the in-process extractor vs full-parse run")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--only", choices=("all", "extraction", "pipeline", "latency"),
                        default="all", help="latency: the stack and the latency run at "
                        "--rate only (no throughput, capacity or scaling runs)")
    parser.add_argument("--quick", action="store_true",
                        help="day-to-day size (make bench QUICK=1): one pipeline run, short "
                        "streams, no scaling; under two minutes")
    parser.add_argument("--profile", action="store_true",
                        help="print cProfile's top functions of the extractor run")
    parser.add_argument("--run-dir", help="where the stack's logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.articles, args.repeats, args.latency_seconds = 600, 1, 10.0
        args.capacity_seconds, args.scaling, args.extractor_articles = 6.0, [], 150
        # one stack for everything: a second start would cost about 15 s, and the quick
        # run's broker holds a few hundred records per partition, not thousands
        args.capacity_probe_seconds, args.capacity_same_stack = 4.0, True
    if args.only == "latency":
        args.repeats, args.capacity_seconds, args.scaling = 0, 0.0, []
    console = Console(stderr=False)
    model = load(ExtractorSettings).model

    latency_count = int(args.latency_seconds * args.rate)
    # enough for the probe at the batch capacity and the 80 % run (up to 300/s)
    capacity_count = int((args.capacity_seconds + args.capacity_probe_seconds) * 300) \
        if args.capacity_seconds > 0 else 0
    mix, origin = news_mix(latency_count + args.articles * args.repeats + capacity_count,
                           args.seed)
    latency_articles = latency_stream(mix[:latency_count], latency_count,
                                      args.latency_partnership_share, args.seed)
    at = latency_count
    throughput_runs = []
    for _ in range(args.repeats):
        throughput_runs.append(mix[at:at + args.articles])
        at += args.articles
    capacity_pool = latency_stream(mix[at:], len(mix) - at, args.capacity_partnership_share,
                                   args.seed + 3)
    warmup = synthetic_articles(args.warmup, seed=args.seed + 7, partnership_share=0.5,
                                id_prefix="warmup")
    console.print(f"news mix: {origin}")
    figures: dict[str, Any] = {"corpus": origin, "repeats": args.repeats, "quick": args.quick,
                               # how busy the shared machine was (1-minute load average)
                               "load_average_at_start": round(os.getloadavg()[0], 2)}
    table = Table(title="Alliance Radar benchmark", show_lines=False)
    table.add_column("figure")
    table.add_column("value (median \\[min-max])", justify="right")
    table.add_column("note")
    full_parse: list[float] = []

    if args.only in ("all", "extraction"):
        texts = throughput_runs[0][:args.extractor_articles]
        console.print(f"extraction: {len(texts)} articles x {max(args.repeats, 3)}, extractor "
                      f"then plain nlp.pipe ({model}), then the extractor pool")
        ex, report = measure(texts, model, repeats=max(args.repeats, 3), profile=args.profile)
        full_parse = ex.full_parse_articles_per_s
        figures |= {
            **spread_figures("extractor_articles_per_s", ex.extractor_articles_per_s),
            **spread_figures("full_parse_articles_per_s", full_parse),
            "extractor_words_per_s": rounded(spread(ex.per_s(ex.extractor_seconds, True))[0],
                                             0),
            "full_parse_words_per_s": rounded(spread(ex.per_s(ex.full_parse_seconds,
                                                              True))[0], 0),
            **spread_figures("extractor_vs_full_parse", ex.speedups, 2),
            **spread_figures("pool_articles_per_s", ex.pool_articles_per_s),
            "pool_processes": ex.pool_processes,
        }
        table.add_row("extractor articles/s", shown(ex.extractor_articles_per_s),
                      f"{ex.articles} articles, {ex.words:,} words, "
                      f"{ex.articles_with_events} with events")
        table.add_row("full parse articles/s", shown(full_parse),
                      f"plain nlp.pipe of {model}")
        table.add_row("extractor / full parse", shown(ex.speedups, ".2f"),
                      "speed ratio, per repeat")
        table.add_row("extractor pool articles/s", shown(ex.pool_articles_per_s),
                      f"{ex.pool_processes} worker processes")
        if report:
            print(report)

    if args.only in ("all", "pipeline", "latency"):
        started = time.monotonic()
        out = run_pipeline(args, warmup, latency_articles, throughput_runs, capacity_pool,
                           console)
        lat, thrs, rss = out["latency"], out["throughputs"], out["rss"]
        per_s = [t.articles_per_s for t in thrs]
        tag = f"{args.rate:g}"
        lat_figures, ms, ms_http = latency_figures(lat, tag)
        if thrs:
            figures |= {**spread_figures("pipeline_articles_per_s", per_s),
                        "pipeline_articles": thrs[-1].published,
                        # CPU ms per article per process, 100 articles to a request and
                        # drained in big batches (the last throughput run)
                        "cpu_ms_per_article_throughput": {
                            name: rounded(seconds * 1000 / max(thrs[-1].published, 1), 2)
                            for name, seconds in sorted(thrs[-1].cpu_seconds.items())}}
        figures |= {**lat_figures,
                    "latency_articles_per_request": args.latency_batch,
                    **{f"rss_mb_{name}": rounded(mb) for name, mb in sorted(rss.items())}}
        if full_parse and per_s:
            figures |= spread_figures(
                "pipeline_vs_full_parse", [p / spread(full_parse)[0] for p in per_s], 2)
        if thrs:
            table.add_row("pipeline articles/s", shown(per_s),
                          f"{thrs[-1].published} published per run, {len(thrs)} runs (ingest "
                          f"alone {thrs[-1].ingest_articles_per_s:,.0f}/s), "
                          f"{thrs[-1].partnership_events} events; target ≥ "
                          f"{TARGET_ARTICLES_PER_S:g}")
        if full_parse and per_s:
            table.add_row("pipeline / full parse",
                          shown([p / spread(full_parse)[0] for p in per_s], ".2f"),
                          "same invocation")
        for q in (50, 95, 99):
            table.add_row(f"latency p{q} at {tag}/s", f"{percentile(ms, q):,.0f} ms",
                          f"fetched_at → change; from the HTTP request "
                          f"{percentile(ms_http, q):,.0f} ms"
                          + (f"; target ≤ {TARGET_P99_MS:g}" if q == 99 else ""))
        for hop, seconds in lat.hops.items():
            ms_hop = [x * 1000 for x in seconds]
            table.add_row(f"  p50 / p99 {hop.split(':')[0]}",
                          f"{percentile(ms_hop, 50):,.0f} / {percentile(ms_hop, 99):,.0f} ms",
                          hop.split(": ")[1])
        table.add_row("  p50 broker + fetch",
                      f"{percentile([x * 1000 for x in lat.article_visible], 50):,.0f} ms",
                      "article record → this benchmark's consumer (reference)")
        table.add_row("  p50 / p99 extractor batch",
                      f"{bucket_quantile(lat.extractor_batch_seconds, 50) * 1000:,.0f} / "
                      f"{bucket_quantile(lat.extractor_batch_seconds, 99) * 1000:,.0f} ms",
                      "handling one poll (the workers' parse), from its histogram")
        per_article = {name: seconds * 1000 / max(lat.sent, 1)
                       for name, seconds in sorted(lat.cpu_seconds.items())}
        table.add_row("  CPU ms per article", f"{sum(per_article.values()):,.2f}",
                      ", ".join(f"{name} {ms:.2f}" for name, ms in per_article.items()))
        table.add_row("  queue peak / drain", f"{lat.queue_peak()[0]:,.0f} / "
                      f"{lat.queue_peak()[1]:,.0f}", "in front of the extractor / aggregator; "
                      f"{lat.drain_seconds:.1f} s to drain after the last send")
        if thrs:
            thr_cpu = {name: seconds * 1000 / max(thrs[-1].published, 1)
                       for name, seconds in sorted(thrs[-1].cpu_seconds.items())}
            table.add_row("CPU ms per article, throughput", f"{sum(thr_cpu.values()):,.2f}",
                          ", ".join(f"{name} {ms:.2f}" for name, ms in thr_cpu.items()))
        table.add_row("latency samples", str(len(ms)),
                      f"{lat.sent} sent, {args.latency_batch} per request, achieved "
                      f"{lat.achieved_per_s:.1f}/s")
        if out.get("probe") is not None:
            probe = out["probe"]
            figures |= {"capacity_probe_offered_per_s": rounded(probe.offered_per_s),
                        "capacity_probe_queue_peak": dict(zip(
                            ("extractor", "aggregator"), map(rounded, probe.queue_peak()),
                            strict=True)),
                        "cpu_ms_per_article_at_capacity_probe": {
                            name: rounded(sec * 1000 / max(probe.sent, 1), 2)
                            for name, sec in sorted(probe.cpu_seconds.items())}}
            table.add_row("paced capacity", f"{out['capacity_per_s']:,.1f}/s",
                          f"kept up with at {probe.offered_per_s:.1f}/s offered one per "
                          f"request (the batch capacity); queue peak "
                          f"{probe.queue_peak()[0]:,.0f}")
        if "capacity_per_s" in out:
            figures |= {"capacity_paced_per_s": rounded(out["capacity_per_s"]),
                        "capacity80_basis": "paced" if out.get("probe") else "batch",
                        "capacity80_fresh_stack": not args.capacity_same_stack}
        if out.get("at_capacity") is not None:
            cap = out["at_capacity"]
            cap_figures, cap_ms, _ = latency_figures(cap, "capacity80")
            figures |= cap_figures | {"capacity80_offered_per_s": rounded(cap.offered_per_s)}
            table.add_row(f"latency p50/p99 at {args.capacity_share:.0%} capacity",
                          f"{percentile(cap_ms, 50):,.0f} / {percentile(cap_ms, 99):,.0f} ms",
                          f"{len(cap_ms)} samples at {cap.offered_per_s:.1f}/s offered")
            table.add_row("  kept up with / queue peak / drain",
                          f"{cap.kept_up_per_s:,.1f}/s", "articles consumed per second; peak "
                          "queue in front of the extractor / aggregator "
                          f"{cap.queue_peak()[0]:,.0f} / {cap.queue_peak()[1]:,.0f}; "
                          f"{cap.drain_seconds:.1f} s to drain after the last send")
        elif out.get("capacity_error"):
            figures["capacity80_error"] = out["capacity_error"]
            table.add_row(f"latency at {args.capacity_share:.0%} capacity", "failed",
                          out["capacity_error"])
        for name, mb in sorted(rss.items()):
            table.add_row(f"peak RSS {name}", f"{mb:,.0f} MiB", "VmHWM")
        if args.scaling:
            scaling = run_scaling(args, warmup, throughput_runs[0], console)
            figures["scaling_articles_per_s"] = {str(k): rounded(v) for k, v in scaling.items()}
            for processes, value in scaling.items():
                table.add_row(f"pipeline with {processes} extractor process(es)",
                              f"{value:,.1f}", "articles/s, fresh stack")
        table.add_row("pipeline run", f"{time.monotonic() - started:.0f} s", "wall clock")
        figures["targets_met"] = targets_met(figures, tag, len(ms))

    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    console.print(table)
    print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
