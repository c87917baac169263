"""`python -m bench.intake`: CPU per article of the ingestor's request path without Kafka
or HTTP, in this process, one article at a time as a one-article request takes it: parse
the body, judge it (language detection, MinHash), decide (dedup), the two records' bytes,
the HTTP answer. What the ingestor process spends beyond these is its HTTP server, its
Kafka clients and its event loop (compare `cpu_ms_per_article_*` of `python -m bench`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.corpus import news_mix
from services.ingestor.documents import parse_document
from services.ingestor.http_api import _answer
from services.ingestor.publish import Judge
from shared.settings import IngestorSettings, load


def cpu_ms_each(step: Callable[[Any], Any], inputs: list[Any]) -> tuple[float, list[Any]]:
    """CPU ms per input of `step` over `inputs`, and its outputs."""
    started = time.process_time()
    out = [step(x) for x in inputs]
    return (time.process_time() - started) * 1000 / max(len(inputs), 1), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intake",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1987)
    args = parser.parse_args(argv)
    articles, origin = news_mix(args.articles + 1, args.seed)
    bodies = [a.to_json().encode() for a in articles]
    judge = Judge.from_settings(load(IngestorSettings))
    # the first article loads the language model: not a per-article cost
    judge.prepare(next(parse_document(bodies[0], name="body", default_source="http")))
    bodies = bodies[1:]
    figures: dict[str, float] = {}
    figures["parse the body"], items = cpu_ms_each(
        lambda b: next(parse_document(b, name="body", default_source="http")), bodies)
    figures["language detection"], _ = cpu_ms_each(
        lambda i: judge.policy.judge(f"{i.title}\n\n{i.text}", None), items)
    figures["judge.prepare (detection + MinHash)"], prepared = cpu_ms_each(judge.prepare,
                                                                          items)
    figures["judge.decide (dedup)"], verdicts = cpu_ms_each(judge.decide, prepared)
    figures["record bytes (article, seen)"], _ = cpu_ms_each(
        lambda v: v.article and (v.article.to_bytes(), v.seen.to_bytes()), verdicts)
    figures["HTTP answer body"], _ = cpu_ms_each(lambda v: _answer(None, [v.result]),
                                                 verdicts)
    print(f"{len(bodies)} articles of {origin}, one at a time, CPU ms per article:")
    for name, ms in figures.items():
        print(f"  {name:40s} {ms:.3f}")


if __name__ == "__main__":
    main()
