"""`python -m bench.durable`: what keeping the local run across restarts costs, per storage
option, on the same stream.

Options:
- `memory`: the embedded broker as it was (nothing survives a stop) - the baseline;
- `journal`: memory broker, plus the journal (shared/journal.py) that `radar up` keeps and
  replays at start;
- `s3`: the broker's own durable storage, `--storage-engine s3://tansu/` on the filesystem
  S3 server s3rver (npm; give its install folder with --s3rver, or it is skipped).

Per option: pipeline throughput (articles/s from the first POST until the aggregator has
consumed every event, as in `make bench`), then the stack is stopped and started again
on the same storage, and the start-up is timed: broker ready (and, for the journal, its
replay), every service healthy, and the view back in full (same alliance count as before
the stop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.corpus import synthetic_articles
from bench.pipeline import Bench, ThroughputFigures
from services.cli.stack import SERVICES, Stack
from shared.broker import EmbeddedBroker, free_port, terminate
from shared.pages import every_row


@dataclass
class Figures:
    option: str
    articles: int
    articles_per_s: float
    restart_broker_s: float
    restart_healthy_s: float
    restart_view_s: float | None
    alliances: int
    storage_mb: float


class S3rver:
    """The filesystem S3 server, in its own folder, on a free loopback port."""

    def __init__(self, install: Path, data: Path) -> None:
        self.bin = install / "node_modules" / ".bin" / "s3rver"
        self.data = data
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> S3rver:
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(self.bin), "-d", str(self.data), "-a", "127.0.0.1", "-p", str(self.port),
             "--configure-bucket", "tansu", "--allow-mismatched-signatures", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("s3rver did not start")

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ACCESS_KEY_ID": "S3RVER",
                "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true"}

    def stop(self) -> None:
        terminate(self.proc)


def _stack(option: str, run_dir: Path, broker_port: int, ports: dict[str, int],
           s3: S3rver | None) -> Stack:
    env = {"RADAR_PROFILE": "embedded", "RADAR_LOG_LEVEL": "WARNING"}
    if option == "s3":
        assert s3 is not None
        broker = EmbeddedBroker(port=broker_port, log_path=run_dir / "broker.log",
                                storage="s3://tansu/", env=s3.env())
        return Stack(run_dir=run_dir, bootstrap_servers=None, broker_port=broker_port,
                     ports=ports, extra_env=env, broker=broker)
    journal = run_dir / "journal" if option == "journal" else None
    return Stack(run_dir=run_dir, broker_port=broker_port, ports=ports, extra_env=env,
                 journal_dir=journal)


def _settled_count(api: str, quiet_s: float = 10.0, timeout: float = 600) -> int:
    """The view's alliance count once it has not changed for `quiet_s` (the aggregator has
    consumed every event when the bench says drained, but its writes may still be on the way:
    on slow storage, for a while)."""
    deadline = time.monotonic() + timeout
    count, since = _view_count(api), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _view_count(api)
        if now != count:
            count, since = now, time.monotonic()
    return count


def _view_count(api: str) -> int:
    def get(params: dict[str, str]) -> dict:
        resp = httpx.get(api, params=params, timeout=5)
        resp.raise_for_status()
        return resp.json()

    try:
        return len(every_row(get))  # the list answers in pages
    except httpx.HTTPError:
        return -1


def measure(option: str, articles: int, work: Path, s3rver_dir: Path | None,
            console: Console) -> Figures:
    run_dir = work / option
    s3 = S3rver(s3rver_dir, run_dir / "s3") if option == "s3" and s3rver_dir else None
    if s3:
        s3.start()
    try:
        ports = {name: free_port() for name in SERVICES}
        broker_port = free_port()
        stack = _stack(option, run_dir, broker_port, ports, s3)
        bench = Bench(run_dir, stack)
        bench.http = httpx.AsyncClient(timeout=600)  # a POST of 100 articles on s3 is slow
        bench.post_timeout_s = 600.0
        if option == "s3":
            stack.broker.start(timeout=60)
        with bench:
            stream = synthetic_articles(articles, seed=11)
            result = asyncio.run(_throughput(bench, stream))
            api = stack.services["aggregator"].base_url + "/alliances"
            alliances = _settled_count(api)
        console.print(f"{option}: {result.articles_per_s:.1f} articles/s, {alliances} "
                      "alliances; restarting")
        started = time.monotonic()
        again = _stack(option, run_dir, broker_port, ports, s3)
        if option == "s3":
            again.broker.start(timeout=120)
        else:
            again.start_broker()
        broker_s = time.monotonic() - started
        try:
            again.start()
            again.wait_healthy(timeout=300)
            healthy_s = time.monotonic() - started
            deadline = time.monotonic() + (300 if option != "memory" else 0)
            while _view_count(api) != alliances and time.monotonic() < deadline:
                time.sleep(0.2)
            view_s = time.monotonic() - started
            back = _view_count(api)
        finally:
            again.stop()
        if back != alliances and option != "memory":  # memory: nothing survives, by design
            raise RuntimeError(f"{option}: view came back with {back} of {alliances} alliances")
        size = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file()
                   and ("journal" in f.parts or "s3" in f.parts)) / 1e6
        return Figures(option, result.published, round(result.articles_per_s, 1),
                       round(broker_s, 2), round(healthy_s, 2),
                       round(view_s, 2) if back == alliances else None, alliances,
                       round(size, 1))
    finally:
        if s3:
            s3.stop()


async def _throughput(bench: Bench, stream: list) -> ThroughputFigures:
    try:
        await bench.warm_up(stream[:20])
        return await bench.throughput(stream[20:], timeout=1200)
    finally:
        await bench.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.durable", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--options", default="memory,journal,s3")
    parser.add_argument("--s3rver", type=Path, default=None,
                        help="folder with node_modules/.bin/s3rver (npm install s3rver@3.7.1)")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    work = Path(tempfile.mkdtemp(prefix="radar-durable-"))
    rows = []
    try:
        for option in args.options.split(","):
            if option == "s3" and not args.s3rver:
                console.print("s3: skipped (no --s3rver)")
                continue
            try:
                rows.append(measure(option, args.articles, work, args.s3rver, console))
            except Exception as exc:  # report the others all the same
                console.print(f"{option}: failed: {exc!r}")
                continue
            console.print(json.dumps(asdict(rows[-1])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"durable local run: {args.articles} generated articles")
    for col in ("storage", "articles/s", "restart: broker s", "healthy s", "view back s",
                "alliances", "storage MB"):
        table.add_column(col)
    for f in rows:
        view = "lost" if f.restart_view_s is None else f"{f.restart_view_s:.2f}"
        table.add_row(f.option, f"{f.articles_per_s:.1f}", f"{f.restart_broker_s:.2f}",
                      f"{f.restart_healthy_s:.2f}", view,
                      str(f.alliances), f"{f.storage_mb:.1f}")
    Console().print(table)
    print(json.dumps({"durable": [asdict(f) for f in rows]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
