"""`python -m bench.profile`: where each article's milliseconds go, per service, under load.

Starts the stack as `make bench` does, warms it up, then runs `py-spy record` (sampling,
raw collapsed stacks, child processes included: the extractor's workers) against every
service while N articles go through as fast as the ingestor takes them. Each service's
samples are sorted into buckets by the frames they contain (the first rule that matches a
stack wins, most specific first) and turned into CPU milliseconds per article:
samples / sampling rate / articles. Prints a Markdown table (the README's performance
section holds one) and writes the raw stacks next to the logs for a closer look.

py-spy samples threads that are running (not idle), so the figures are CPU time, not
wall-clock waiting; it needs permission to read other processes' memory (root, or
kernel.yama.ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.corpus import news_mix, synthetic_articles
from bench.pipeline import Bench

#: (bucket, pattern over a whole collapsed stack), per service; first match wins.
RULES: dict[str, list[tuple[str, str]]] = {
    "ingestor": [
        ("language detection", r"ingestor/language\.py"),
        ("near-duplicate check (MinHash)", r"ingestor/dedup\.py|datasketch"),
        ("seen-set", r"ingestor/seen\.py"),
        ("cleaning", r"ingestor/clean\.py"),
        ("parsing the request (JSON Lines -> ArticleEvent)",
         r"ingestor/(sources|documents)\.py|model_validate"),
        ("JSON out (model_dump_json)", r"model_dump_json|to_bytes"),
        ("Kafka client (aiokafka)", r"aiokafka/"),
        ("HTTP server (aiohttp)", r"aiohttp/"),
        ("metrics", r"prometheus_client/"),
        ("logging", r"logging/"),
    ],
    "extractor": [
        ("our spaCy components (companies, candidates, partnership model)",
         r"extractor/components/"),
        ("gate, sentence split, windows, names (before the parse)",
         r"\b(prepare|is_candidate) \([^)]*extractor/pipeline\.py"),
        ("spaCy parse (tagger, parser, NER)", r"spacy/|thinc/|numpy"),
        ("events out (to_event, evidence)", r"to_event|attribution"),
        ("process/thread pool plumbing (pickle, futures)",
         r"multiprocessing/|concurrent/futures|pickle"),
        ("JSON in/out (pydantic)", r"model_validate_json|model_dump_json|to_bytes|decode \("),
        ("Kafka client (aiokafka)", r"aiokafka/"),
    ],
    "aggregator": [
        ("stage fold and change (state.py)", r"aggregator/state\.py"),
        ("company index", r"aggregator/index\.py"),
        ("list index (listing.py)", r"aggregator/listing\.py"),
        ("JSON in/out (pydantic)", r"model_validate_json|model_dump_json|to_bytes"),
        ("agents (our code)", r"aggregator/agents\.py|aggregator/fence\.py"),
        ("tables and changelog (Faust)", r"faust/tables|faust/stores"),
        ("Kafka client (aiokafka)", r"aiokafka/"),
        ("Faust streams and transport", r"faust/|mode/"),
    ],
}
OTHER = "other (event loop, logging, metrics, ...)"
LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def buckets(raw: str, rules: list[tuple[str, str]]) -> Counter[str]:
    """Samples per bucket from py-spy's raw output (one "frame;frame;... count" a line)."""
    compiled = [(name, re.compile(pattern)) for name, pattern in rules]
    out: Counter[str] = Counter()
    for line in raw.splitlines():
        match = LINE.match(line.strip())
        if not match:
            continue
        stack, count = match.group("stack"), int(match.group("count"))
        out[next((name for name, rx in compiled if rx.search(stack)), OTHER)] += count
    return out


def markdown(per_service: dict[str, Counter[str]], articles: int, rate: int,
             seconds: float) -> str:
    lines = [f"CPU ms per article ({articles} Reuters TRAIN articles through the stack in "
             f"{seconds:.1f} s, py-spy at {rate} Hz)", "",
             "| service | where | ms/article | share |", "| --- | --- | ---: | ---: |"]
    for service, counts in per_service.items():
        total = sum(counts.values())
        per_article = total / rate / articles * 1000
        lines.append(f"| **{service}** | **all** | **{per_article:.1f}** | 100 % |")
        for name, n in counts.most_common():
            lines.append(f"| | {name} | {n / rate / articles * 1000:.1f} | "
                         f"{n / max(total, 1):.0%} |")
    return "\n".join(lines)


def collect(folder: Path) -> dict[str, Counter[str]]:
    return {name: buckets((folder / f"{name}.stacks").read_text(), RULES[name])
            for name in ("ingestor", "extractor", "aggregator")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=1500)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--paced", type=float, default=0.0, metavar="RATE",
                        help="offer the articles one per request at RATE a second (the "
                        "latency runs' request path) instead of 100 per request as fast as "
                        "the ingestor takes them")
    parser.add_argument("--run-dir", help="logs and raw stacks (default: a temp dir)")
    parser.add_argument("--stacks", nargs=2, metavar=("DIR", "SECONDS"),
                        help="only sort the raw stacks of an earlier run (its --run-dir and "
                        "its seconds, with --articles and --rate as then)")
    args = parser.parse_args(argv)
    if args.stacks:
        folder, seconds = Path(args.stacks[0]), float(args.stacks[1])
        print(markdown(collect(folder), args.articles, args.rate, seconds))
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="radar-profile-"))
    articles, origin = news_mix(args.articles, args.seed)
    warmup = synthetic_articles(40, seed=args.seed + 7, partnership_share=0.5,
                                id_prefix="warmup")
    print(f"profiling {len(articles)} articles of {origin}; stacks in {run_dir}")
    recorders: dict[str, subprocess.Popen[bytes]] = {}
    with Bench(run_dir) as bench:
        async def run() -> float:  # one event loop: the bench's HTTP client lives in it
            try:
                await bench.warm_up(warmup)
                recorders.update({
                    name: subprocess.Popen(
                        [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                         "-r", str(args.rate), "-f", "raw", "-o",
                         str(run_dir / f"{name}.stacks")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for name, pid in bench.pids().items()})
                await asyncio.sleep(1.0)  # py-spy attached
                started = time.monotonic()
                if args.paced > 0:
                    await bench.latency(articles, args.paced, settle_s=0.0)
                    return time.monotonic() - started
                return (await bench.throughput(articles)).seconds
            finally:
                await bench.close()

        seconds = asyncio.run(run())
        for recorder in recorders.values():
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for name, recorder in recorders.items():
            _, err = recorder.communicate(timeout=60)
            if not (run_dir / f"{name}.stacks").exists():
                print(f"py-spy on {name} wrote nothing: {err.decode()[-500:]}",
                      file=sys.stderr)
                return 1
    print(markdown(collect(run_dir), len(articles), args.rate, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
