"""`radar feeds add|list|remove` (the feeds file), `radar ingest PATH|URL|-`, and
`radar ingestor --feeds-file`: the command-line side of the ingestor.

Wired into `services/cli/main.py` as `app.add_typer(feeds_app, name="feeds")`,
`app.command()(ingest)` and `app.command()(ingestor)`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from services.cli.console import err, fail, out
from services.ingestor.feeds import (
    FeedConfig,
    FeedsFileError,
    add_feed,
    load_feeds,
    remove_feed,
)
from shared.settings import IngestorSettings, load

if TYPE_CHECKING:  # the intake pulls numpy, scipy and the language model: only for `ingest`
    from services.ingestor.publish import ItemResult
    from services.ingestor.sources import Parsed

feeds_app = typer.Typer(help="Standing RSS/Atom feeds the ingestor polls (the feeds file, "
                        "RADAR_INGESTOR_FEEDS_FILE; a running ingestor re-reads it).",
                        no_args_is_help=True)

FileOption = Annotated[Path | None, typer.Option(
    "--file", help="Feeds file [default: RADAR_INGESTOR_FEEDS_FILE or feeds.toml]")]


def _feeds_file(path: Path | None) -> Path:
    return path or load(IngestorSettings).feeds_file


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="http(s) URL of an RSS or Atom feed.")],
    name: Annotated[str | None, typer.Option(help="Label in metrics and logs; default "
                                                  "source of its items.")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between polls [default: "
                                                        "RADAR_INGESTOR_FEED_INTERVAL_S]")]
    = None,
    full_text: Annotated[bool, typer.Option("--full-text", help="Fetch each new item's page "
                                                               "for its full text (feeds "
                                                               "that carry only a summary).")]
    = False,
    file: FileOption = None,
) -> None:
    """Add a feed to the feeds file."""
    path = _feeds_file(file)
    try:
        feed = FeedConfig(url=url, name=name, interval_s=interval, full_text=full_text)
    except ValidationError as exc:
        raise fail("; ".join(e["msg"] for e in exc.errors()), 2) from None
    try:
        add_feed(path, feed)
    except FeedsFileError as exc:
        raise fail(str(exc)) from None
    out.print(f"added {feed.label} ({feed.url}) to {path}")


@feeds_app.command("list")
def feeds_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    file: FileOption = None,
) -> None:
    """List the feeds of the feeds file."""
    path = _feeds_file(file)
    try:
        feeds = load_feeds(path)
    except FeedsFileError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps([f.model_dump() for f in feeds], indent=2))
        return
    default = load(IngestorSettings).feed_interval_s
    table = Table(title=f"Feeds in {path} ({len(feeds)})")
    for column in ("name", "url", "interval", "full text"):
        table.add_column(column)
    for feed in feeds:
        table.add_row(feed.label, feed.url, f"{feed.interval_s or default:g}s",
                      "yes" if feed.full_text else "")
    out.print(table)


@feeds_app.command("remove")
def feeds_remove(
    url_or_name: Annotated[str, typer.Argument(help="URL or name of the feed.")],
    file: FileOption = None,
) -> None:
    """Remove a feed from the feeds file."""
    path = _feeds_file(file)
    try:
        gone = remove_feed(path, url_or_name)
    except FeedsFileError as exc:
        raise fail(str(exc)) from None
    out.print(f"removed {gone.label} ({gone.url}) from {path}")


def ingestor(
    feeds_file: Annotated[Path | None, typer.Option(help="Feeds file to poll [default: "
                                                         "RADAR_INGESTOR_FEEDS_FILE]")] = None,
) -> None:
    """Run the ingestor service (HTTP push, feeds, watched folder, inbox -> news.articles.v1)."""
    from services.ingestor.service import main

    main(feeds_file=feeds_file)


# ---------------------------------------------------------------- radar ingest


def ingest(
    path: Annotated[str, typer.Argument(help="JSONL, JSON, RSS/Atom, HTML or text file, a "
                                             "folder of them, an http(s) URL of a page or "
                                             "feed, or - for stdin.")],
    source: Annotated[str | None, typer.Option(help="Source name for items without one.")]
    = None,
) -> None:
    """Publish articles to news.articles.v1, once per story: duplicates of stories already
    published and other languages are skipped, bad items reported."""
    from services.ingestor.dedup import Outcome
    from services.ingestor.publish import summary

    settings = load(IngestorSettings)
    results = asyncio.run(ingest_target(path, source, settings))
    if results is None:
        raise fail(f"no such file or folder: {path}", 2)
    for r in results:
        if r.status == Outcome.REJECTED:
            err.print(f"[yellow]skipped[/yellow] {r.where}: {r.error}")
        elif r.status in (Outcome.DUPLICATE, Outcome.NEAR_DUPLICATE):
            err.print(f"[dim]skipped {r.where}: {r.status.replace('_', ' ')} of "
                      f"{r.duplicate_of}[/dim]")
        elif r.status == Outcome.NON_ENGLISH:
            err.print(f"[dim]skipped {r.where}: language {r.language}[/dim]")
    counts = summary(results)
    skipped = len(results) - counts[Outcome.PUBLISHED]
    detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()
                       if n and k not in ("accepted", Outcome.PUBLISHED))
    out.print(f"published {counts[Outcome.PUBLISHED]} article(s), skipped {skipped}"
              + (f" ({detail})" if detail else ""))
    if counts["rejected"]:
        raise typer.Exit(2 if counts["accepted"] else 1)


async def ingest_target(target: str, source: str | None,
                        settings: IngestorSettings) -> list[ItemResult] | None:
    """Parse (or fetch) the target and take it in as the service does, with the same
    ingestor (`services.ingestor.wiring`): the seen topic replayed first, so what the stack
    already published is a duplicate. None when the target is a missing path."""
    from services.ingestor.documents import parse_document, read_documents
    from services.ingestor.fetch import FetchError
    from services.ingestor.sources import InputError
    from services.ingestor.wiring import Ingestor
    from shared.settings import kafka, topics

    is_url = target.startswith(("http://", "https://"))
    documents = [] if is_url else read_documents(target)
    if documents is None:
        return None
    ingestor = Ingestor.from_settings(settings, kafka(), topics(), name="cli")
    await ingestor.open()
    try:
        await ingestor.remember()
        if is_url:
            try:
                return await ingestor.take_url(target, channel="cli", default_source=source)
            except FetchError as exc:
                refused: list[Parsed] = [InputError(target, exc.reason, exc.message)]
                return await ingestor.intake.take(refused, "cli")
        items = [item for name, data in documents
                 for item in parse_document(data, name=name, default_source=source or name)]
        return await ingestor.intake.take(items, "cli")
    finally:
        await ingestor.close()


def standalone_app() -> typer.Typer:
    """These commands on their own (`python -m services.cli.feeds ...`), as `radar` wires
    them."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    app.add_typer(feeds_app, name="feeds")
    app.command()(ingest)
    app.command()(ingestor)
    return app


if __name__ == "__main__":
    standalone_app()()
