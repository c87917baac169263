"""Ingestor service, the entry point: every way news comes in -> one intake ->
news.articles.v1.

Channels: POST /articles (one JSON article, a JSON array, JSON Lines, RSS/Atom, HTML, text),
POST /fetch (a URL to fetch), the feeds file (polled), a watched folder, and the Kafka inbox
`news.inbox.v1` (RawDocument; bad documents go to its .dlq). Every channel goes through
`Intake`: language policy, dedup against `news.seen.v1` (replayed before /health says
ready), publish. The doors are in `http_api.py` and `doors.py`, the shared parts in
`wiring.py`; this module starts them and stops them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from services.ingestor.doors import expire_loop, feed_publisher, inbox_handler, watch_folder
from services.ingestor.feeds import FeedPoller
from services.ingestor.fulltext import FullText, HostPacer
from services.ingestor.http_api import http_app
from services.ingestor.wiring import SERVICE, Ingestor
from shared import logs, metrics
from shared.contracts import RawDocument
from shared.kafka import StreamProcessor
from shared.logs import stop_on_signals
from shared.settings import (
    AuthSettings,
    IngestorSettings,
    KafkaSettings,
    TopicSettings,
    auth,
    kafka,
    load,
    topics,
)

log = logging.getLogger(__name__)


async def run(settings: IngestorSettings, kafka: KafkaSettings, topics: TopicSettings,
              auth: AuthSettings) -> None:
    ingestor = Ingestor.from_settings(settings, kafka, topics)
    await ingestor.open()
    full_text = FullText(ingestor.fetcher, HostPacer(settings.full_text_host_interval_s))
    poller = FeedPoller(settings.feeds_file, ingestor.fetcher,
                        feed_publisher(ingestor, full_text),
                        default_interval=settings.feed_interval_s,
                        max_backoff=settings.feed_max_backoff_s)
    inbox = StreamProcessor(service=SERVICE, kafka=kafka, input_topic=topics.inbox,
                            model=RawDocument, group_id=settings.group_id,
                            handler=inbox_handler(ingestor), batch_size=16,
                            background=True)  # documents, not yet news: no 20 ms polling

    def readiness() -> tuple[bool, dict[str, object]]:
        connected = ingestor.producer.client.cluster.brokers() != set()
        return ingestor.ready and connected, {
            "topic": topics.articles, "seen_stories": len(ingestor.judge.index),
            "feeds": len(poller.states), "inbox_assigned": inbox.ready,
            "dedup_window_hours": settings.dedup_window_hours}

    runner = await metrics.start_http(http_app(ingestor, auth, readiness), settings.host,
                                      settings.port)
    log.info("ingestor HTTP on http://%s:%s", settings.host, settings.port)
    stop = stop_on_signals()
    tasks: list[asyncio.Task] = []
    try:
        await ingestor.remember()
        await inbox.start()
        tasks = [asyncio.create_task(ingestor.seen.follow(stop)),
                 asyncio.create_task(expire_loop(ingestor, stop, every=_expire_every(settings))),
                 asyncio.create_task(poller.run(stop)),
                 asyncio.create_task(inbox.run(stop))]
        if settings.watch_dir is not None:
            tasks.append(asyncio.create_task(watch_folder(
                ingestor, settings.watch_dir, settings.watch_interval_s, stop)))
        stopped = asyncio.create_task(stop.wait())
        tasks.append(stopped)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:  # a background task that ends on its own has failed
            if task is not stopped and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        await inbox.stop()
        await ingestor.close()


def _expire_every(settings: IngestorSettings) -> float:
    window = timedelta(hours=settings.dedup_window_hours).total_seconds()
    return min(60.0, max(1.0, window / 10))


def main(feeds_file: Path | None = None) -> None:
    """Read the settings (`feeds_file` overrides RADAR_INGESTOR_FEEDS_FILE) and run."""
    logs.setup(SERVICE)
    settings = load(IngestorSettings)
    if feeds_file is not None:
        settings = settings.model_copy(update={"feeds_file": feeds_file})
    asyncio.run(run(settings, kafka(), topics(), auth()))
