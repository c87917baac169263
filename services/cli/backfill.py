"""`radar backfill PATH...`: an archive of news through the live intake, oldest first, with a
progress bar and a summary; Ctrl-C stops after the batch in flight and a second run resumes
(the logic is in `services/ingestor/backfill.py`).

Wired into `services/cli/main.py` as `app.command()(backfill)`.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from services.cli.console import err, fail, out
from shared.settings import IngestorSettings, load

if TYPE_CHECKING:  # the intake pulls numpy, scipy and the language model: only when run
    from services.ingestor.backfill import Tally
    from services.ingestor.sources import Parsed

INTERRUPTED = 130


def backfill(
    paths: Annotated[list[str], typer.Argument(help="Files or folders: JSON Lines, JSON, "
                                                    "RSS/Atom, HTML, text, Reuters-21578 "
                                                    "SGML (.sgm), each also as .gz.")],
    source: Annotated[str | None, typer.Option(help="Source name for items without one "
                                                    "(default: the file name).")] = None,
    reuters_split: Annotated[list[str] | None, typer.Option(
        "--reuters-split", help="Reuters-21578 LEWISSPLIT to read (repeat for several): "
                                "train (default), test, not-used. TEST and NOT-USED are "
                                "reserved for held-out work: read only when named.")] = None,
    max_lag: Annotated[int | None, typer.Option(help="Wait while the extractor's group has "
                                                     "more than this many articles unread.")]
    = None,
    batch: Annotated[int, typer.Option(min=1, max=5000, help="Articles per batch (a batch in "
                                                             "flight is finished on Ctrl-C).")]
    = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON, no "
                                                         "progress bar.")] = False,
) -> None:
    """Publish an archive to news.articles.v1 through the live intake (cleaning, language,
    dedup), oldest first. Ctrl-C stops after the batch in flight; run again to resume: what
    was published is a duplicate then."""
    from aiokafka.errors import KafkaError

    from services.ingestor.backfill import BackfillError, in_order, read_all
    from services.ingestor.reuters import parse_splits

    try:
        splits = parse_splits(reuters_split or [])
        items = in_order(read_all(paths, source=source, splits=splits))
    except (BackfillError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    try:
        tally = asyncio.run(_run(items, load(IngestorSettings), batch=batch, max_lag=max_lag,
                                 quiet=as_json))
    except asyncio.CancelledError:
        raise fail("left at once on a second Ctrl-C: the batch in flight may be sent again "
                   "by the next run", INTERRUPTED) from None
    except (TimeoutError, KafkaError) as exc:  # the broker is down or unreachable
        raise fail(f"{type(exc).__name__}: {exc}; run again to resume") from None
    if as_json:
        print(json.dumps(tally.as_json(), indent=2))
    else:
        _print_summary(tally)
    if tally.interrupted:
        raise typer.Exit(INTERRUPTED)


async def _run(items: list[Parsed], settings: IngestorSettings, *, batch: int,
               max_lag: int | None, quiet: bool) -> Tally:
    from services.ingestor import backfill as logic
    from services.ingestor.wiring import Ingestor
    from shared.settings import ExtractorSettings, kafka, topics

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def interrupt() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second Ctrl-C: leave now
            return
        stop.set()
        err.print("[yellow]stopping after the batch in flight (Ctrl-C again to leave "
                  "now); run the same command again to resume[/yellow]")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    layout = topics()
    ingestor = Ingestor.from_settings(settings, kafka(), layout, name=logic.CHANNEL)
    lag = logic.GroupLag(kafka(), layout.articles, load(ExtractorSettings).group_id) \
        if max_lag is not None else None
    try:
        await ingestor.open()
        await ingestor.remember()
        if lag is not None:
            await lag.start()
        with _progress(quiet) as bar:
            task = bar.add_task("backfill", total=len(items), published=0, duplicates=0,
                                rejected=0, rate=0.0)

            def show(tally: Tally) -> None:
                _advance(bar, task, tally)

            async def take(batch_items: list[Parsed]):
                return await ingestor.intake.take(batch_items, logic.CHANNEL)

            return await logic.run(items, take, batch_size=batch, stop=stop, lag=lag,
                                   max_lag=max_lag, progress=show)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if lag is not None:
            await lag.stop()
        await ingestor.close()


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("published {task.fields[published]} · duplicates {task.fields[duplicates]}"
                   " · rejected {task.fields[rejected]} · {task.fields[rate]:.0f}/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err, disable=quiet, transient=False)


def _advance(bar: Progress, task: TaskID, tally: Tally) -> None:
    bar.update(task, completed=tally.taken, published=tally.published,
               duplicates=tally.duplicates, rejected=tally.rejected, rate=tally.rate)


def _print_summary(tally: Tally) -> None:
    reasons = ", ".join(f"{n} {reason.replace('_', ' ')}"
                        for reason, n in sorted(tally.rejected_by_reason.items()))
    out.print(f"read {tally.read}, published {tally.published}, duplicates "
              f"{tally.duplicates}, other language {tally.non_english}, rejected "
              f"{tally.rejected}" + (f" ({reasons})" if reasons else "")
              + f" in {tally.seconds:.1f} s ({tally.rate:.0f} items/s)")
    if tally.first_published_at:
        out.print(f"news from {tally.first_published_at} to {tally.last_published_at}")
    if tally.lag_waits:
        out.print(f"waited for the extractor {tally.lag_waits} time(s) (--max-lag)")
    if tally.interrupted:
        out.print(f"[yellow]interrupted after {tally.taken} of {tally.read} items: run the "
                  "same command again to resume[/yellow]")


if __name__ == "__main__":
    typer.run(backfill)
