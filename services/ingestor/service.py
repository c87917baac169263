"""Ingestor service: HTTP push (POST /articles) and an optional watched folder ->
news.articles.v1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from services.ingestor import metrics as in_metrics
from services.ingestor.publish import ArticlePublisher
from services.ingestor.sources import InputError, parse_document
from shared import logs, metrics
from shared.kafka import ensure_topics, make_producer
from shared.settings import IngestorSettings, kafka, load, topics

log = logging.getLogger(__name__)
SERVICE = "ingestor"
PUBLISHER = web.AppKey("publisher", ArticlePublisher)


async def post_articles(request: web.Request) -> web.Response:
    """Accept one JSON article, a JSON array, JSON Lines, or an RSS/Atom document."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        in_metrics.REJECTED.labels("http", "too_large").inc()
        raise
    in_metrics.BYTES.labels("http").inc(len(body))
    if not body.strip():
        in_metrics.REJECTED.labels("http", "empty_body").inc()
        return web.json_response({"error": "empty body"}, status=400)
    items = list(parse_document(body, name="body", default_source="http"))
    results = await request.app[PUBLISHER].publish(items, channel="http")
    accepted = sum(r.status == "accepted" for r in results)
    status = 202 if accepted else 400
    if not accepted and len(items) == 1 and isinstance(items[0], InputError):
        return web.json_response({"error": str(items[0]), "reason": items[0].reason,
                                  "items": [r.as_json() for r in results]}, status=400)
    return web.json_response({"accepted": accepted, "rejected": len(results) - accepted,
                              "items": [r.as_json() for r in results]}, status=status)


async def watch_folder(folder: Path, interval: float, publisher: ArticlePublisher,
                       stop: asyncio.Event) -> None:
    """Ingest each new file dropped into `folder` once, then rename it `*.done`."""
    folder.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".jsonl", ".json", ".xml", ".rss", ".atom", ".txt"):
                continue
            data = path.read_bytes()
            in_metrics.BYTES.labels("folder").inc(len(data))
            await publisher.publish(parse_document(data, name=path.name,
                                                   default_source=path.stem), "folder")
            path.rename(path.with_name(path.name + ".done"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def run() -> None:
    settings = load(IngestorSettings)
    k, t = kafka(), topics()
    await ensure_topics(k, t, [t.articles])
    producer = make_producer(k, client_id="radar-ingestor")
    await producer.start()
    publisher = ArticlePublisher(producer, t.articles)

    def readiness() -> tuple[bool, dict[str, object]]:
        connected = producer.client.cluster.brokers() != set()
        return connected, {"topic": t.articles}

    app = web.Application(client_max_size=settings.max_body_bytes)
    app[PUBLISHER] = publisher
    app.add_routes([web.post("/articles", post_articles),
                    *metrics.ops_routes(SERVICE, readiness)])
    runner = await metrics.start_http(app, settings.host, settings.port)
    log.info("ingestor HTTP on http://%s:%s", settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.watch_dir is not None:
            await watch_folder(settings.watch_dir, settings.watch_interval_s, publisher, stop)
        else:
            await stop.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


def main() -> None:
    logs.setup(SERVICE)
    asyncio.run(run())
