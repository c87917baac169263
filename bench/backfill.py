"""`python -m bench.backfill` (`make backfill-bench`): an archive backfilled into a fresh stack.

A stack on free ports with its own embedded broker (bench/pipeline.py's `Bench`), then
`radar backfill PATH --json` as a user runs it (by default every Reuters-21578 SGML file,
TRAIN split only). Figures:
- the backfill's own summary (read, published, duplicates, rejected by reason) and its
  seconds: from the command's start (reading and parsing included) to its exit;
- seconds to the complete view: from the command's start to the moment the extractor has
  consumed every published article and the aggregator every partnership event they yielded
  (the services' /metrics counters), and articles/s over that;
- the alliances in the view at the end, by stage (the query API, every page).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.corpus import REUTERS_DIR
from bench.pipeline import Bench
from shared.auth import bearer_headers
from shared.settings import auth


def radar() -> str:
    return str(Path(sys.executable).parent / "radar")


async def alliances(bench: Bench) -> list[dict[str, Any]]:
    """Every alliance of the view, following `next_cursor` when the API pages."""
    rows: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        answer = await bench.http.get(bench.url("aggregator", "/alliances"), params=params,
                                      headers=bearer_headers(auth().api_token))
        answer.raise_for_status()
        page = answer.json()
        rows.extend(page["alliances"])
        if not page.get("next_cursor"):
            return rows
        params = {"cursor": page["next_cursor"]}


async def measure(bench: Bench, paths: list[str], batch: int) -> dict[str, Any]:
    env = dict(os.environ) | {"RADAR_BOOTSTRAP_SERVERS": bench.stack.bootstrap,
                              "RADAR_PROFILE": "embedded"}
    base = await bench.progress()
    started = time.monotonic()
    done = await asyncio.to_thread(subprocess.run, [radar(), "backfill", *paths, "--json",
                                                    "--batch", str(batch)],
                                   env=env, capture_output=True, text=True)
    backfilled = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"radar backfill failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    finished = await bench.drained(base, summary["published"], timeout=3600)
    # The aggregator's tables answer once the last event is consumed; give its commit a beat.
    await asyncio.sleep(1.0)
    view = await alliances(bench)
    seconds = finished - started
    return {
        "backfill": summary,
        "backfill_seconds": round(backfilled - started, 1),
        "complete_view_seconds": round(seconds, 1),
        "articles_per_s_to_view": round(summary["published"] / seconds, 1) if seconds else 0,
        "partnership_events": int((await bench.progress()).minus(base).extractor_produced),
        "alliances": len(view),
        "alliances_by_stage": dict(Counter(row["stage"] for row in view).most_common()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="What to backfill [default: the "
                        "Reuters-21578 SGML files next to the repository, TRAIN only]")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args(argv)
    paths = args.paths or sorted(str(p) for p in REUTERS_DIR.glob("reut2-*.sgm"))
    if not paths:
        parser.error(f"no paths given and no Reuters-21578 files in {REUTERS_DIR}")
    with tempfile.TemporaryDirectory(prefix="radar-backfill-bench-") as tmp, \
            Bench(Path(tmp)) as bench:
        figures = asyncio.run(measure(bench, paths, args.batch))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
