"""The ingestor's other doors, each a loop or handler around one `Ingestor`: the watched
folder, the Kafka inbox (RawDocument; bad documents go to its .dlq), the feed poller's
publisher; and the expiry of the dedup window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.ingestor import metrics as in_metrics
from services.ingestor.dedup import Outcome
from services.ingestor.documents import FOLDER_SUFFIXES
from services.ingestor.feeds import FeedConfig
from services.ingestor.fetch import FetchError
from services.ingestor.fulltext import FullText
from services.ingestor.seen import expire
from services.ingestor.sources import Parsed
from services.ingestor.wiring import Ingestor
from shared.contracts import Contract, RawDocument, utcnow
from shared.kafka import Processed, Rejected

log = logging.getLogger(__name__)


async def watch_folder(ingestor: Ingestor, folder: Path, interval: float,
                       stop: asyncio.Event) -> None:
    """Ingest each new file dropped into `folder` once, then rename it `*.done`."""
    folder.mkdir(parents=True, exist_ok=True)
    limit = ingestor.settings.max_body_bytes
    while not stop.is_set():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in FOLDER_SUFFIXES or not path.is_file():
                continue
            try:
                if path.stat().st_size > limit:
                    in_metrics.REJECTED.labels("folder", "too_large").inc()
                    log.warning("%s: larger than %d bytes; skipped", path, limit)
                else:
                    data = path.read_bytes()
                    in_metrics.BYTES.labels("folder").inc(len(data))
                    await ingestor.take_document(data, name=path.name,
                                                 default_source=path.stem, channel="folder")
                path.rename(path.with_name(path.name + ".done"))
            except OSError as exc:
                in_metrics.REJECTED.labels("folder", "unreadable").inc()
                log.warning("%s: %s", path, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def inbox_handler(ingestor: Ingestor) -> Callable[[list[Contract]],
                                                   Awaitable[list[Processed]]]:
    """RawDocuments from Kafka: a document with rejected items (or a refused URL) becomes a
    dead letter naming them; its good items are published all the same."""

    async def handle(documents: list[Contract]) -> list[Processed]:
        outcomes = []
        for doc in documents:
            assert isinstance(doc, RawDocument)
            outcomes.append(await _take_raw(ingestor, doc))
        return outcomes

    return handle


async def _take_raw(ingestor: Ingestor, doc: RawDocument) -> Processed:
    source = doc.source or doc.name
    if doc.url is not None:
        try:
            results = await ingestor.take_url(doc.url, channel="inbox", default_source=source)
        except FetchError as exc:
            in_metrics.REJECTED.labels("inbox", exc.reason).inc()
            in_metrics.ARTICLES.labels("inbox", Outcome.REJECTED).inc()
            return Processed(rejected=Rejected(exc.reason, str(exc)))
    else:
        data = (doc.content or "").encode()
        in_metrics.BYTES.labels("inbox").inc(len(data))
        results = await ingestor.take_document(data, name=doc.name, default_source=source,
                                               channel="inbox")
    bad = [r for r in results if r.status == Outcome.REJECTED]
    if not bad:
        return Processed()
    detail = "; ".join(f"{r.where}: {r.reason}: {r.error}" for r in bad[:20])
    return Processed(rejected=Rejected(bad[0].reason or "rejected",
                                           f"{len(bad)} of {len(results)} item(s) rejected: "
                                           f"{detail}"))


def feed_publisher(ingestor: Ingestor, full_text: FullText | None = None
                   ) -> Callable[[list[Parsed], FeedConfig], Awaitable[int]]:
    async def on_items(items: list[Parsed], feed: FeedConfig) -> int:
        if feed.full_text and full_text is not None:
            items = await full_text.enrich(items, feed.label, ingestor.judge)
        results = await ingestor.intake.take(items, "feed")
        return sum(r.status == Outcome.PUBLISHED for r in results)

    return on_items


async def expire_loop(ingestor: Ingestor, stop: asyncio.Event, every: float = 60.0) -> None:
    """Forget (and tombstone) stories that left the dedup window."""
    index = ingestor.judge.index
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if index.enabled:
            gone = await expire(index, ingestor.producer, ingestor.topics.seen, utcnow())
            if gone:
                log.info("dedup window: forgot %d stor(ies)", gone)
