"""What the article gate buys, in process: `python -m bench.gate [--articles N]`.

Over `news_mix(N)` (Reuters TRAIN mix), with the cue table's gate alone and with the learned
gate in front of it: the share of articles passed, `Extractor.prepare` (gates, sentence
split, windows, name scan) and the parse of the prepared windows (`nlp.pipe`), in ms per
article of the whole mix; then a plain full parse of the same texts (first `--full`
articles) for the ratio. Each side is timed `--repeats` times (median).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.corpus import news_mix
from bench.extraction import as_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--full", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import spacy

    from services.extractor.pipeline import DEFAULT_SPACY_MODEL, Extractor

    articles, origin = news_mix(args.articles)
    events = as_events(articles)
    gated = Extractor.load()
    sides = {"cue gate only": Extractor(gated.nlp, gate=None), "learned gate": gated}
    out: dict[str, object] = {"articles": len(events), "origin": origin}
    for name, extractor in sides.items():
        prepare_s, parse_s, passed = [], [], 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            docs = [extractor.prepare(a) for a in events]
            prepare_s.append(time.perf_counter() - started)
            todo = [d for d in docs if d is not None]
            passed = len(todo)
            started = time.perf_counter()
            for _ in extractor.nlp.pipe(todo, batch_size=32):
                pass
            parse_s.append(time.perf_counter() - started)
        n = len(events)
        out[name] = {"passed": passed, "pass_rate": round(passed / n, 4),
                     "prepare_ms_per_article": round(statistics.median(prepare_s) / n * 1e3, 3),
                     "parse_ms_per_article": round(statistics.median(parse_s) / n * 1e3, 3)}
    nlp = spacy.load(DEFAULT_SPACY_MODEL)
    texts = [a.text for a in articles[:args.full]]
    full = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in nlp.pipe(texts, batch_size=32):
            pass
        full.append(time.perf_counter() - started)
    out["full_parse_ms_per_article"] = round(statistics.median(full) / len(texts) * 1e3, 3)
    for name in sides:
        side = out[name]
        assert isinstance(side, dict)
        total = side["prepare_ms_per_article"] + side["parse_ms_per_article"]
        side["ratio_to_full_parse"] = round(out["full_parse_ms_per_article"] / total, 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
