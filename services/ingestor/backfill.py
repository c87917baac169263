"""`radar backfill`: an archive of news through the live intake, oldest first.

Reading (pure): files and folders (recursively), `.gz` files, and each document parsed the
way the live doors parse it (`documents.parse_document`: JSON Lines, JSON, RSS/Atom, pages,
text) or, for the Reuters-21578 SGML form, by `reuters.py`. Every item read is either an
article or an `InputError`; the articles are sorted by `published_at` so one run publishes
history in the order it happened.

Publishing goes through the ingestor's one `Intake` (`wiring.Ingestor`: cleaning, language,
dedup, then the article and its seen record), in batches. The seen-set is replayed first, so
a second run, or a run resumed after Ctrl-C or a crash, finds what was already published a
duplicate and publishes only the rest. Ctrl-C stops after the batch in flight (its articles
and their seen records acknowledged); a crash can at most send that one batch again on the
next run (consumers are idempotent by event id).

Back-pressure: with a lag limit, each batch waits while the extractor's consumer group has
more than that many articles left to read, so a big archive does not bury live news.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.structs import TopicPartition

from services.ingestor.dedup import Outcome
from services.ingestor.documents import FOLDER_SUFFIXES, parse_document
from services.ingestor.publish import ItemResult
from services.ingestor.reuters import DEFAULT_SPLITS, looks_like_reuters, parse_reuters
from services.ingestor.reuters import SUFFIXES as REUTERS_SUFFIXES
from services.ingestor.sources import InputError, Parsed
from shared.contracts import ArticleEvent
from shared.kafka import make_consumer, topic_partitions
from shared.settings import KafkaSettings

#: What a backfill takes from a folder (each also as `.gz`).
SUFFIXES = (*FOLDER_SUFFIXES, *REUTERS_SUFFIXES)
CHANNEL = "backfill"


class BackfillError(ValueError):
    """A path that cannot be backfilled (missing, or nothing readable in it)."""


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """The files to read: each file given, and every file with a known suffix (or that
    suffix plus `.gz`) under each folder given, in path order."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise BackfillError(f"no such file or folder: {path}")
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and _plain_name(p.name).lower().endswith(SUFFIXES)))
        else:
            files.append(path)
    return files


def _plain_name(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def read_file(path: Path) -> tuple[str, bytes] | InputError:
    """(name without `.gz`, content), or why it could not be read."""
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return InputError(str(path), "unreadable_file", f"cannot read {path}: {exc}")
    return _plain_name(path.name), data


def parse_file(name: str, data: bytes, *, source: str | None = None,
               splits: frozenset[str] = DEFAULT_SPLITS) -> Iterator[Parsed]:
    """One file's items: the Reuters SGML form, else whatever the live doors take."""
    if looks_like_reuters(data, name):
        yield from parse_reuters(data, name=name, splits=splits)
    else:
        yield from parse_document(data, name=name, default_source=source or name)


def read_all(paths: Iterable[str | Path], *, source: str | None = None,
             splits: frozenset[str] = DEFAULT_SPLITS) -> list[Parsed]:
    items: list[Parsed] = []
    for path in discover(paths):
        read = read_file(path)
        if isinstance(read, InputError):
            items.append(read)
        else:
            items.extend(parse_file(*read, source=source, splits=splits))
    return items


def in_order(items: Iterable[Parsed]) -> list[Parsed]:
    """Input errors first (they publish nothing), then articles by publication time (ties in
    reading order: the sort is stable)."""
    items = list(items)
    errors = [i for i in items if isinstance(i, InputError)]
    articles = sorted((i for i in items if isinstance(i, ArticleEvent)),
                      key=lambda a: a.published_at)
    return [*errors, *articles]


def batches(items: list[Parsed], size: int) -> Iterator[list[Parsed]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class Tally:
    """What a backfill did so far (the progress bar's and the summary's numbers)."""

    read: int = 0
    published: int = 0
    duplicates: int = 0
    non_english: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    taken: int = 0  # items judged so far
    lag_waits: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    first_published_at: str | None = None
    last_published_at: str | None = None

    def add(self, results: Iterable[ItemResult]) -> None:
        for result in results:
            self.taken += 1
            if result.status == Outcome.PUBLISHED:
                self.published += 1
            elif result.status in (Outcome.DUPLICATE, Outcome.NEAR_DUPLICATE):
                self.duplicates += 1
            elif result.status == Outcome.NON_ENGLISH:
                self.non_english += 1
            else:
                self.rejected += 1
                self.rejected_by_reason[result.reason or "unknown"] += 1

    @property
    def rate(self) -> float:
        """Items taken per second."""
        return self.taken / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"read": self.read, "published": self.published, "duplicates": self.duplicates,
                "non_english": self.non_english, "rejected": self.rejected,
                "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
                "seconds": round(self.seconds, 2), "rate_per_s": round(self.rate, 1),
                "lag_waits": self.lag_waits, "interrupted": self.interrupted,
                "first_published_at": self.first_published_at,
                "last_published_at": self.last_published_at}


Take = Callable[[list[Parsed]], Awaitable[list[ItemResult]]]
LagProbe = Callable[[], Awaitable[int]]


async def wait_for_lag(probe: LagProbe, max_lag: int, stop: asyncio.Event,
                       interval: float = 0.5) -> int:
    """Wait while the probed lag is above `max_lag` (or until `stop`); returns the polls
    that waited."""
    waits = 0
    while not stop.is_set() and await probe() > max_lag:
        waits += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return waits


async def run(items: list[Parsed], take: Take, *, batch_size: int, stop: asyncio.Event,
              lag: LagProbe | None = None, max_lag: int | None = None,
              progress: Callable[[Tally], None] = lambda tally: None) -> Tally:
    """Take `items` (already `in_order`) batch by batch until done or `stop` is set; a
    batch in flight is always finished, so what it published is recorded as seen."""
    tally = Tally(read=len(items))
    started = time.monotonic()
    articles = [i for i in items if isinstance(i, ArticleEvent)]
    if articles:
        tally.first_published_at = articles[0].published_at.isoformat()
        tally.last_published_at = articles[-1].published_at.isoformat()
    progress(tally)
    for batch in batches(items, batch_size):
        if lag is not None and max_lag is not None:
            tally.lag_waits += await wait_for_lag(lag, max_lag, stop)
        if stop.is_set():
            tally.interrupted = True
            break
        tally.add(await take(batch))
        tally.seconds = time.monotonic() - started
        progress(tally)
    tally.seconds = time.monotonic() - started
    return tally


class GroupLag:
    """Records of a topic a consumer group has yet to read: the sum over partitions of the
    end offset minus the group's committed offset (from the start when it has none). Asked
    through a consumer that carries the group id but never joins (the embedded broker does
    not decode the admin client's offset fetch), so it never disturbs the group."""

    def __init__(self, kafka: KafkaSettings, topic: str, group_id: str) -> None:
        self.topic = topic
        self.consumer = make_consumer(kafka, group_id=group_id, client_id="radar-backfill-lag",
                                      enable_auto_commit=False)
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.consumer.start()
        self.partitions = await topic_partitions(self.consumer, self.topic, timeout=30)

    async def __call__(self) -> int:
        ends = await self.consumer.end_offsets(self.partitions)
        starts = await self.consumer.beginning_offsets(self.partitions)
        lag = 0
        for tp in self.partitions:
            committed = await self.consumer.committed(tp)
            done = committed if committed is not None and committed >= 0 else starts[tp]
            lag += max(ends[tp] - done, 0)
        return lag

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()
