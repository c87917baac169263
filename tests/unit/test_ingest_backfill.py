"""Backfill without Kafka: the Reuters SGML reader, file discovery (.gz, folders), ordering,
and the batch loop (stop, back-pressure, tally)."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.ingestor.backfill import (
    BackfillError,
    Tally,
    discover,
    in_order,
    read_all,
    run,
    wait_for_lag,
)
from services.ingestor.dedup import Outcome
from services.ingestor.publish import ItemResult
from services.ingestor.reuters import parse_reuters, parse_splits, reuters_time
from services.ingestor.sources import InputError
from shared.contracts import ArticleEvent

BODY = ("Acme Corp and Widget Inc said they agreed to form a joint venture to make "
        "semiconductors in Texas, the companies said in a statement on Thursday.")


def doc(newid: int, split: str, date: str, title: str = "ACME, WIDGET FORM VENTURE",
        body: str | None = BODY) -> str:
    text = f"<BODY>{body}\n Reuter\n&#3;</BODY>" if body is not None else ""
    return (f'<REUTERS TOPICS="YES" LEWISSPLIT="{split}" CGISPLIT="TRAINING-SET" '
            f'OLDID="1" NEWID="{newid}">\n<DATE>{date}</DATE>\n<TOPICS></TOPICS>\n'
            f'<TEXT>&#2;\n<TITLE>{title}</TITLE>\n<DATELINE>DALLAS, Feb 26 - </DATELINE>'
            f'{text}</TEXT>\n</REUTERS>\n')


SGML = ('<!DOCTYPE lewis SYSTEM "lewis.dtd">\n'
        + doc(1, "TRAIN", "26-FEB-1987 15:01:01.79")
        + doc(2, "TEST", "26-FEB-1987 15:02:20.00", title="SECRET TEST")
        + doc(3, "NOT-USED", "26-FEB-1987 15:03:27.51")
        + doc(4, "TRAIN", "3-MAR-1987  09:15:05.40",
              body=BODY.replace("Acme", "Bolt") + " &lt;BLT>")
        + doc(5, "TRAIN", "27-MAR-1987 04:38:47.18M C F", body=None)
        + doc(6, "TRAIN", "31-MAR-1987 605:12:19.12"))


def test_reuters_reads_train_only_by_default() -> None:
    items = list(parse_reuters(SGML.encode("latin-1"), name="reut2-000.sgm"))
    articles = [i for i in items if isinstance(i, ArticleEvent)]
    errors = [i for i in items if isinstance(i, InputError)]
    assert [a.article_id for a in articles] == ["reuters-1", "reuters-4"]
    first = articles[0]
    assert first.title == "ACME, WIDGET FORM VENTURE" and first.source == "Reuters"
    assert first.published_at == datetime(1987, 2, 26, 15, 1, 1, tzinfo=UTC)
    assert first.text.endswith("on Thursday.")  # the "Reuter" signature is dropped
    assert articles[1].text.endswith("<BLT>")
    assert articles[1].published_at == datetime(1987, 3, 3, 9, 15, 5, tzinfo=UTC)
    assert [(e.where, e.reason) for e in errors] == [
        ("reut2-000.sgm#NEWID=5", "missing_text"),
        ("reut2-000.sgm#NEWID=6", "bad_published_at")]
    assert all("SECRET" not in str(i) for i in items)


def test_reuters_other_splits_only_when_named() -> None:
    assert parse_splits([]) == frozenset({"TRAIN"})
    both = parse_splits(["train", "Test"])
    ids = [i.article_id for i in parse_reuters(SGML.encode(), name="x.sgm", splits=both)
           if isinstance(i, ArticleEvent)]
    assert ids == ["reuters-1", "reuters-2", "reuters-4"]
    with pytest.raises(ValueError, match="unknown Reuters split"):
        parse_splits(["validation"])


def test_reuters_dates() -> None:
    assert reuters_time("26-FEB-1987 15:01:01.79") == datetime(1987, 2, 26, 15, 1, 1,
                                                               tzinfo=UTC)
    assert reuters_time("27-MAR-1987 00:02:59.13RM") is not None
    for bad in ("31-MAR-1987 605:12:19.12", "31-FOO-1987 05:12:19.12", "30-FEB-1987 "
                "01:00:00.00", ""):
        assert reuters_time(bad) is None


def jsonl(*rows: dict) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def row(i: str, day: int) -> dict:
    return {"id": i, "title": f"Story {i}", "text": f"{BODY} Story {i}.",
            "published_at": f"2024-01-{day:02d}T08:00:00Z"}


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<item><title>Feed story</title><link>https://wire.example.com/a</link>
<description>Delta Corp and Echo Ltd are in talks over a merger of their units.</description>
<pubDate>Wed, 03 Jan 2024 10:00:00 GMT</pubDate></item></channel></rss>"""


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.jsonl").write_bytes(jsonl(row("j5", 5), row("j1", 1)))
    (folder / "nested" / "b.jsonl.gz").write_bytes(gzip.compress(jsonl(row("g2", 2))))
    (folder / "feed.rss").write_bytes(RSS)
    (folder / "reut2-000.sgm").write_bytes(SGML.encode("latin-1"))
    (folder / "notes.md").write_text("not news")
    (folder / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    return folder


def test_discover_and_read_a_folder_in_publication_order(archive: Path) -> None:
    names = [p.relative_to(archive).as_posix() for p in discover([archive])]
    assert names == ["a.jsonl", "broken.jsonl.gz", "feed.rss", "nested/b.jsonl.gz",
                     "reut2-000.sgm"]
    items = in_order(read_all([archive]))
    errors = [(Path(e.where).name if "/" in e.where else e.where, e.reason)
              for e in items if isinstance(e, InputError)]
    assert errors == [("broken.jsonl.gz", "unreadable_file"),
                      ("reut2-000.sgm#NEWID=5", "missing_text"),
                      ("reut2-000.sgm#NEWID=6", "bad_published_at")]
    articles = [i for i in items if isinstance(i, ArticleEvent)]
    assert [a.article_id for a in articles][:2] == ["reuters-1", "reuters-4"]
    assert [a.article_id for a in articles][2:4] == ["j1", "g2"]
    assert articles[4].title == "Feed story" and articles[5].article_id == "j5"
    stamps = [a.published_at for a in articles]
    assert stamps == sorted(stamps)
    assert articles[3].source == "b.jsonl"  # the .gz is read as the file inside


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BackfillError, match="no such file"):
        discover([tmp_path / "nope"])


def fake_take(taken: list[list[str]], stop_after: int | None = None,
              stop: asyncio.Event | None = None):
    async def take(batch):
        taken.append([getattr(i, "article_id", None) or i.where for i in batch])
        if stop is not None and len(taken) == stop_after:
            stop.set()
        return [ItemResult(i.where, Outcome.REJECTED, reason=i.reason)
                if isinstance(i, InputError) else
                ItemResult(i.article_id, Outcome.DUPLICATE if i.article_id == "j1"
                           else Outcome.PUBLISHED, article_id=i.article_id)
                for i in batch]
    return take


async def test_run_batches_tallies_and_stops_after_the_batch_in_flight(archive: Path) -> None:
    items = in_order(read_all([archive]))
    taken: list[list[str]] = []
    seen: list[int] = []
    tally = await run(items, fake_take(taken), batch_size=3, stop=asyncio.Event(),
                      progress=lambda t: seen.append(t.taken))
    assert [len(b) for b in taken] == [3, 3, 3]
    assert (tally.read, tally.published, tally.duplicates, tally.rejected) == (9, 5, 1, 3)
    assert tally.rejected_by_reason == {"unreadable_file": 1, "missing_text": 1,
                                        "bad_published_at": 1}
    assert seen == [0, 3, 6, 9] and not tally.interrupted
    assert tally.first_published_at.startswith("1987-02-26")
    assert json.loads(json.dumps(tally.as_json()))["published"] == 5

    stop = asyncio.Event()
    taken = []
    tally = await run(items, fake_take(taken, stop_after=1, stop=stop), batch_size=3,
                      stop=stop)
    assert len(taken) == 1 and tally.interrupted and tally.taken == 3


async def test_back_pressure_waits_while_the_lag_is_high() -> None:
    lags = iter([50, 20, 5, 0])

    async def probe() -> int:
        return next(lags)

    assert await wait_for_lag(probe, 10, asyncio.Event(), interval=0.001) == 2
    stop = asyncio.Event()
    stop.set()
    assert await wait_for_lag(probe, 10, stop, interval=0.001) == 0


def test_tally_rate() -> None:
    tally = Tally(taken=100, seconds=4.0)
    assert tally.rate == 25.0 and Tally().rate == 0.0


def test_cli_refuses_missing_paths_and_unknown_splits(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from services.cli.backfill import backfill

    app = typer.Typer()
    app.command()(backfill)
    missing = CliRunner().invoke(app, [str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    (tmp_path / "a.sgm").write_text(SGML)
    split = CliRunner().invoke(app, [str(tmp_path / "a.sgm"), "--reuters-split", "dev"])
    assert split.exit_code == 2 and "unknown Reuters split" in split.output
