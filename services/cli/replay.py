"""`radar replay`: rebuild the alliance view from the retained partnership topic.

The partnership topic is the source of truth; the tables are a fold over it. A replay starts
one aggregator worker under a new app id (`radar-aggregator-replay-<time>`), so it gets a new
consumer group (reading from offset 0) and new, empty changelog topics, with publishing off
(`RADAR_AGGREGATOR_PUBLISH=false`: the rebuild emits no changes, state or dead letters on the
shared topics). It notes the topic's end offsets first and waits until the worker has
committed past them: then the rebuilt view holds every event published before the replay
started. It prints that view, optionally compares it with the live one, and optionally keeps
serving it (same API as the live aggregator) until Ctrl-C.

Run it as `radar replay` or `python -m services.cli.replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

#: Fields that differ between two correct views: the wall-clock time of the last write.
VOLATILE_FIELDS = frozenset({"updated_at"})


def replay_app_id(now: datetime | None = None) -> str:
    """A new app id per replay: fresh group, fresh changelog topics."""
    return f"radar-aggregator-replay-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"


# ------------------------------------------------------------------ offsets


def caught_up(committed: dict[int, int | None], targets: dict[int, int]) -> bool:
    """Every partition committed at or past its target (committed = next offset to read)."""
    return all((committed.get(p) or 0) >= end for p, end in targets.items())


async def end_offsets(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """Partition -> offset after the last record (without joining a group)."""
    from shared.kafka import assigned_consumer
    from shared.settings import kafka

    settings = kafka().model_copy(update={"bootstrap_servers": bootstrap})
    consumer = await assigned_consumer(settings, topic, from_beginning=True,
                                       client_id="radar-replay-ends", timeout=timeout)
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str,
                            partitions: list[int]) -> dict[int, int | None]:
    """What `group` committed on `topic`: fetched without joining the group."""
    from aiokafka.structs import TopicPartition

    from shared.kafka import make_consumer
    from shared.settings import kafka

    settings = kafka().model_copy(update={"bootstrap_servers": bootstrap})
    consumer = make_consumer(settings, group_id=group, client_id="radar-replay-offsets")
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        await consumer.stop()


async def wait_caught_up(bootstrap: str, group: str, topic: str, targets: dict[int, int],
                         timeout: float, alive: Callable[[], None] = lambda: None) -> None:
    """Return once `group` committed every target offset; `alive()` raises if the worker
    died; TimeoutError names the partitions still behind."""
    from shared.waiting import wait_until

    lagging: dict[int, tuple[int | None, int]] = {}

    async def done() -> bool:
        alive()
        committed = await committed_offsets(bootstrap, group, topic, sorted(targets))
        lagging.clear()
        lagging.update({p: (committed.get(p), end) for p, end in targets.items()
                        if (committed.get(p) or 0) < end})
        return caught_up(committed, targets)

    await wait_until(done, timeout=timeout, interval=0.5,
                     message=lambda _: f"group {group} still behind on {topic} after "
                     f"{timeout:.0f}s (partition: (committed, target)) {lagging}")


# ------------------------------------------------------------------ views


def fetch_view(api_url: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """GET /alliances (the whole view, every worker), with RADAR_API_TOKEN when set."""
    from shared.auth import bearer_headers
    from shared.pages import every_row
    from shared.settings import auth

    def get(params: dict[str, str]) -> dict[str, Any]:
        resp = httpx.get(f"{api_url.rstrip('/')}/alliances", params=params, timeout=timeout,
                         headers=bearer_headers(auth().api_token))
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code} from {api_url}/alliances: "
                               f"{resp.text[:300]}")
        return resp.json()

    return every_row(get)


def diff_views(live: list[dict[str, Any]], rebuilt: list[dict[str, Any]]) -> list[str]:
    """Human-readable differences between two views (empty when they are equal), ignoring
    the wall-clock `updated_at`."""
    def keyed(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["alliance_id"]: {k: v for k, v in r.items() if k not in VOLATILE_FIELDS}
                for r in rows}

    a, b = keyed(live), keyed(rebuilt)
    out = [f"{i}: only in the live view" for i in sorted(a.keys() - b.keys())]
    out += [f"{i}: only in the rebuilt view" for i in sorted(b.keys() - a.keys())]
    for i in sorted(a.keys() & b.keys()):
        fields = sorted(k for k in a[i].keys() | b[i].keys() if a[i].get(k) != b[i].get(k))
        if fields:
            out.append(f"{i}: differs in {', '.join(fields)}")
    return out


# ------------------------------------------------------------------ the replay worker


@dataclass
class Replay:
    app_id: str
    url: str
    targets: dict[int, int]
    seconds: float
    alliances: list[dict[str, Any]]

    @property
    def events(self) -> int:
        return sum(self.targets.values())


@contextlib.contextmanager
def replay_worker(*, run_dir: Path, app_id: str | None = None, port: int = 0,
                  bootstrap: str | None = None, timeout: float = 300.0,
                  extra_env: dict[str, str] | None = None) -> Iterator[Replay]:
    """Start a private aggregator worker, wait until it has folded every partnership event
    published so far, yield the rebuilt view; stop the worker (and remove its data) on exit.
    """
    from services.cli.stack import ServiceProcess, Stack
    from shared.broker import free_port
    from shared.settings import kafka, topics

    started = time.monotonic()
    app_id = app_id or replay_app_id()
    bootstrap = bootstrap or kafka().bootstrap_servers
    topic = topics().partnerships
    targets = asyncio.run(end_offsets(bootstrap, topic))
    port = port or free_port()
    # Stack builds the service environment; only the aggregator runs, with its own log.
    stack = Stack(run_dir=run_dir, bootstrap_servers=bootstrap,
                  ports={"ingestor": 0, "extractor": 0, "aggregator": port},
                  extra_env={"RADAR_AGGREGATOR_APP_ID": app_id,
                             "RADAR_AGGREGATOR_PUBLISH": "false",
                             "RADAR_AGGREGATOR_DATA_DIR": str(run_dir / app_id)}
                  | (extra_env or {}))
    worker = ServiceProcess("aggregator", port, stack.host, run_dir / "logs" / f"{app_id}.log",
                            stack.env())
    stack.services["aggregator"] = worker
    worker.start()

    def alive() -> None:
        if not worker.alive():
            raise RuntimeError(f"the replay worker exited:\n{worker.tail()}")

    try:
        stack.wait_healthy(timeout=timeout, names=("aggregator",))
        asyncio.run(wait_caught_up(bootstrap, app_id, topic, targets, timeout, alive))
        yield Replay(app_id=app_id, url=worker.base_url, targets=targets,
                     seconds=time.monotonic() - started, alliances=fetch_view(worker.base_url))
    finally:
        stack.stop()
        shutil.rmtree(run_dir / app_id, ignore_errors=True)


def compare_with_live(replay: Replay, *, api_url: str, live_app_id: str, bootstrap: str,
                      timeout: float) -> list[str]:
    """Wait until the live group has processed what the replay did, then diff the views."""
    from shared.settings import topics

    asyncio.run(wait_caught_up(bootstrap, live_app_id, topics().partnerships, replay.targets,
                               timeout))
    return diff_views(fetch_view(api_url), replay.alliances)


def replay(
    compare: Annotated[bool, typer.Option(help="Compare with the live view (RADAR_API_URL) "
                                                "once it has processed the same events; exit "
                                                "1 if they differ.")] = False,
    serve: Annotated[bool, typer.Option(help="Keep serving the rebuilt view (same API) until "
                                              "Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rebuilt view as "
                                                         "JSON.")] = False,
    app_id: Annotated[str | None, typer.Option(help="App id of the rebuild (default: "
                                                    "radar-aggregator-replay-<time>).")] = None,
    port: Annotated[int, typer.Option(help="Port of the rebuilt view's API (default 0: a "
                                           "free one).")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the rebuild.")] = 300.0,
    run_dir: Annotated[Path, typer.Option(help="Logs and local state.")] = Path(".run"),
) -> None:
    """Rebuild the alliance view from alliances.partnerships.v1 into fresh tables (a new
    app id), print it, and optionally compare it with the live view or serve it."""
    from services.cli.console import err, out, wait_for_signal
    from services.cli.live import alliance_table
    from shared.settings import AggregatorSettings, CliSettings, kafka, load

    differences: list[str] = []
    try:
        with replay_worker(run_dir=run_dir, app_id=app_id, port=port, timeout=timeout) as done:
            err.print(f"rebuilt {len(done.alliances)} alliance(s) from {done.events} "
                      f"partnership record(s) in {done.seconds:.1f}s (app id {done.app_id})")
            if as_json:
                print(json.dumps(done.alliances, indent=2), flush=True)
            else:
                out.print(alliance_table(done.alliances, f"Rebuilt view ({done.app_id})"))
            if compare:
                api = load(CliSettings).api_url
                differences = compare_with_live(
                    done, api_url=api, live_app_id=load(AggregatorSettings).app_id,
                    bootstrap=kafka().bootstrap_servers, timeout=timeout)
                for line in differences:
                    err.print(f"[yellow]differs[/yellow] {line}")
                err.print(f"compared with the live view at {api}: "
                          + (f"{len(differences)} difference(s)" if differences
                             else "identical"))
            if serve:
                err.print(f"serving the rebuilt view at {done.url}/alliances (Ctrl-C stops)")
                wait_for_signal()
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if differences:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(replay)
