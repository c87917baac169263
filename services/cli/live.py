"""Terminal views: the live alliance table (`radar up`), and the change feed (`radar watch`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shared.auth import bearer_headers
from shared.contracts import AllianceChange
from shared.kafka import Rejected, assigned_consumer, decode
from shared.settings import KafkaSettings, auth, kafka, topics

STAGE_STYLE = {"rumored": "yellow", "talks": "cyan", "agreed": "green", "active": "bold green",
               "failed": "red", "ended": "magenta"}


def alliance_table(rows: list[dict[str, Any]], title: str = "Alliances") -> Table:
    table = Table(title=f"{title} ({len(rows)})", expand=False)
    for col in ("parties", "stage", "ep", "since", "articles", "conf", "areas"):
        table.add_column(col)
    for r in rows:
        stage = r["stage"]
        table.add_row(" + ".join(r["parties"]), Text(stage, style=STAGE_STYLE.get(stage, "")),
                      str(r.get("episode", 1)), r["last_changed"][:10],
                      str(r.get("article_count", "")), f"{r.get('confidence', 0):.2f}",
                      ", ".join(r.get("areas", []))[:40])
    return table


def change_line(change: AllianceChange) -> str:
    before = change.previous_stage.value if change.previous_stage else "new"
    return (f"{change.changed_at:%Y-%m-%d}  {' + '.join(change.parties)}: {before} -> "
            f"{change.stage.value}  (article {change.article_id})")


def _kafka(bootstrap_servers: str | None) -> KafkaSettings:
    """The environment's Kafka settings, aimed at `bootstrap_servers` when given."""
    settings = kafka()
    if bootstrap_servers:
        settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
    return settings


async def follow_changes(on_change: Callable[[AllianceChange], None], *, from_beginning: bool,
                         stop: asyncio.Event, limit: int | None = None,
                         bootstrap_servers: str | None = None,
                         on_ready: Callable[[], None] | None = None) -> None:
    consumer = await assigned_consumer(_kafka(bootstrap_servers), topics().changes,
                                       from_beginning=from_beginning, client_id="radar-watch")
    if on_ready is not None:
        on_ready()
    seen = 0
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for record in records:
                    change = decode(AllianceChange, record.value)
                    if isinstance(change, Rejected):
                        continue
                    on_change(change)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
    finally:
        await consumer.stop()


async def watch_changes(*, company: str | None, as_json: bool, from_beginning: bool,
                        limit: int | None, console: Console) -> None:
    needle = company.casefold() if company else None
    count = 0
    stop = asyncio.Event()

    def show(change: AllianceChange) -> None:
        nonlocal count
        if needle and needle not in (p.casefold() for p in change.parties):
            return
        count += 1
        if as_json:
            print(change.model_dump_json(), flush=True)
        else:
            console.print(change_line(change))
        if limit is not None and count >= limit:
            stop.set()

    def ready() -> None:
        where = "from the beginning" if from_beginning else "from now on"
        Console(stderr=True).print(f"watching {topics().changes} {where} (Ctrl-C stops)")

    await follow_changes(show, from_beginning=from_beginning, stop=stop, on_ready=ready)


async def run_live(stack: Any, articles: list[dict], interval: float,
                   console: Console) -> None:
    """Feed demo articles (if any) through the ingestor and show the view as it changes."""
    api = f"{stack.services['aggregator'].base_url}/alliances"
    ingest = f"{stack.services['ingestor'].base_url}/articles"
    recent: deque[str] = deque(maxlen=12)
    rows: list[dict[str, Any]] = []
    status = {"fed": 0}
    stop = asyncio.Event()
    tty = console.is_terminal

    def on_change(change: AllianceChange) -> None:
        recent.append(change_line(change))
        if not tty:
            console.print(f"change: {change_line(change)}")

    async def feed() -> None:
        async with httpx.AsyncClient(timeout=10,
                                     headers=bearer_headers(auth().ingestor_token)) as client:
            for article in articles:
                resp = await client.post(ingest, content=json.dumps(article))
                status["fed"] += 1
                if not tty:
                    console.print(f"fed {article.get('id')}: HTTP {resp.status_code} "
                                  f"{_outcome(resp)}")
                await asyncio.sleep(interval)
        if not tty and articles:
            console.print(f"demo feed done: {len(articles)} articles sent")

    async def poll() -> None:
        async with httpx.AsyncClient(timeout=5,
                                     headers=bearer_headers(auth().api_token)) as client:
            while not stop.is_set():
                for name, svc in stack.services.items():
                    if not svc.alive():
                        raise RuntimeError(f"{name} died:\n{svc.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    resp = await client.get(api)
                    if resp.status_code == 200:
                        rows[:] = resp.json()["alliances"]
                await asyncio.sleep(0.5)

    def render() -> Group:
        fed = f"demo articles fed: {status['fed']}/{len(articles)}. " if articles else ""
        return Group(alliance_table(rows, "Live alliance view"),
                     Text("Recent changes:", style="bold"),
                     *(Text(line) for line in recent),
                     Text(f"{fed}Ctrl-C to stop.", style="dim"))

    # Ctrl-C and SIGTERM end the live view by setting `stop`, so the tasks below close their
    # Kafka clients in order. (Raising KeyboardInterrupt from a signal handler instead lands
    # anywhere inside the loop, possibly in one of the client's own tasks, and its close
    # could then wait forever.)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(follow_changes(on_change, from_beginning=True, stop=stop,
                                                  bootstrap_servers=stack.bootstrap)),
             asyncio.create_task(poll())]
    if articles:
        tasks.append(asyncio.create_task(feed()))
    try:
        if tty:
            with Live(render(), console=console, refresh_per_second=4) as live:
                while not await _stopped(stop, 0.25):
                    _raise_failed(tasks)
                    live.update(render())
        else:
            while not await _stopped(stop, 0.25):
                _raise_failed(tasks)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _stopped(stop: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `stop`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
    return stop.is_set()


def _outcome(resp: httpx.Response) -> str:
    """What the ingestor did with a fed article (published, duplicate, ...)."""
    with contextlib.suppress(ValueError, AttributeError):
        return ", ".join(item["status"] for item in resp.json().get("items", []))
    return ""


def _raise_failed(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
