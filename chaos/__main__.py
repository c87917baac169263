"""`python -m chaos` (`make chaos`): a reference run and a faulted run over the same stream of
news, then the invariants, as a table and one JSON line. Exit code 1 when one fails.

The stream: the bench's news mix (Reuters-21578 TRAIN when ../shared/corpora has it, else
the generated newswire) with every 10th slot a story about one of a fixed set of company
pairs whose news walks through the stages (chaos needs alliances that move, and late
reports). The faulted run is paced (`--rate`) so the faults land while news flows; its plan
is drawn from `--seed`: `--kills` SIGKILLs (a quarter of them two services at once, each
restarted after 1-3 s), a quarter as many SIGSTOP/SIGCONT pauses and broker connection
cuts, a tenth as many delays and outages of the broker link (see chaos/faults.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.corpus import Article, alliance_stories, news_mix
from chaos.faults import counts_for, plan
from chaos.invariants import check_all
from chaos.run import RunReport, run_once
from shared.settings import TopicSettings


def chaos_stream(count: int, seed: int, share: float = 0.1) -> tuple[list[Article], str]:
    background, origin = news_mix(count, seed)
    every = max(1, round(1 / share))
    stories = iter(alliance_stories(count // every + 1, max(4, count // 100), seed=seed,
                                    id_prefix="chaos"))
    rest = iter(background)
    picked = [next(stories) if i % every == every - 1 else next(rest) for i in range(count)]
    return picked, origin


def recovery_table(reports: list[RunReport]) -> dict[str, dict[str, float]]:
    """Seconds to healthy after each kind of fault, per service: mean and max."""
    by: dict[str, list[float]] = defaultdict(list)
    for report in reports:
        for r in report.recoveries:
            by[f"{r.kind}/{r.service}"].append(r.seconds)
    return {k: {"n": len(v), "mean_s": round(statistics.mean(v), 2), "max_s": round(max(v), 2)}
            for k, v in sorted(by.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=60.0,
                        help="articles/s offered in the faulted run (default 60)")
    parser.add_argument("--drain-timeout", type=float, default=180.0,
                        help="give up draining when no offset moved this long")
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    console = Console(stderr=True)
    started = time.monotonic()
    # SIGTERM unwinds like Ctrl-C, so every broker, proxy and service of the run is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:7.1f}s[/dim] {message}")

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="radar-chaos-"))
    articles, origin = chaos_stream(args.articles, args.seed)
    window = args.articles / args.rate
    faults = plan(args.seed, args.kills, window_s=window)
    log(f"{len(articles)} articles ({origin} + alliance stories); {len(faults)} faults "
        f"{counts_for(args.kills)} over {window:.0f}s; seed {args.seed}; run dir {run_dir}")
    ref, ref_report = run_once("reference", run_dir / "reference", articles, [], None,
                               args.drain_timeout, log)
    run, run_report = run_once("faulted", run_dir / "faulted", articles, faults, args.rate,
                               args.drain_timeout, log)
    checks = check_all(ref, run, TopicSettings().partitions)
    drained = not run_report.stalled and not ref_report.stalled
    ok = drained and all(c.ok for c in checks)

    table = Table(title=f"chaos: seed {args.seed}, {len(articles)} articles, "
                        f"{args.kills} kills, {len(faults)} faults")
    table.add_column("invariant")
    table.add_column("holds")
    table.add_column("figures")
    table.add_row("every group drained (no stuck partition)", "yes" if drained else "NO",
                  "; ".join(run_report.stalled + ref_report.stalled)[:300] or
                  f"faulted drain {run_report.drain_seconds:.1f}s")
    for check in checks:
        figures = ", ".join(f"{k} {v}" for k, v in check.detail.items() if k != "examples")
        if check.detail.get("examples") and not check.ok:
            figures += f"; e.g. {check.detail['examples']}"
        table.add_row(check.name, "yes" if check.ok else "NO", figures)
    Console().print(table)
    recoveries = recovery_table([run_report])
    rec = Table(title="recovery: seconds from the fault's end to /health 200")
    for col in ("fault/service", "n", "mean s", "max s"):
        rec.add_column(col)
    for key, v in recoveries.items():
        rec.add_row(key, str(v["n"]), f"{v['mean_s']:.2f}", f"{v['max_s']:.2f}")
    Console().print(rec)
    print(json.dumps({
        "ok": ok, "seed": args.seed, "articles": len(articles), "kills": args.kills,
        "faults": len(faults), "origin": origin, "rate": args.rate,
        "reference_s": round(ref_report.seconds, 1), "faulted_s": round(run_report.seconds, 1),
        "total_s": round(time.monotonic() - started, 1),
        "faulted_stream_s": round(run_report.stream_seconds, 1),
        "faulted_drain_s": round(run_report.drain_seconds, 1),
        "post_retries": run_report.post_retries, "stalled": run_report.stalled,
        "invariants": {c.name: {"ok": c.ok} | c.detail for c in checks},
        "recovery": recoveries}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
