"""Ingestor service: every way news comes in -> one intake -> news.articles.v1.

Channels: POST /articles (one JSON article, a JSON array, JSON Lines, RSS/Atom, HTML, text),
POST /fetch (a URL to fetch), the feeds file (polled), a watched folder, and the Kafka inbox
`news.inbox.v1` (RawDocument; bad documents go to its .dlq). Every channel goes through
`Intake`: language policy, dedup against `news.seen.v1` (replayed before /health says
ready), publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from services.ingestor import metrics as in_metrics
from services.ingestor.dedup import Outcome
from services.ingestor.documents import FOLDER_SUFFIXES, parse_off_loop
from services.ingestor.feeds import FeedConfig, FeedPoller
from services.ingestor.fetch import FetchError
from services.ingestor.publish import ItemResult, summary
from services.ingestor.seen import expire
from services.ingestor.sources import InputError, Parsed
from services.ingestor.wiring import SERVICE, Ingestor
from shared import logs, metrics
from shared.auth import token_middleware, warn_if_exposed
from shared.contracts import Contract, RawDocument, utcnow
from shared.kafka import Processed, Rejected, StreamProcessor
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
#: Paths answered without the write token: Prometheus scrapes, orchestrators probe.
OPEN_PATHS = ("/metrics", "/health")


INGESTOR = web.AppKey("ingestor", Ingestor)


def _reject_request(channel: str, reason: str, error: str, status: int = 400) -> web.Response:
    in_metrics.REJECTED.labels(channel, reason).inc()
    return web.json_response({"error": error, "reason": reason}, status=status)


async def _read_body(request: web.Request, channel: str) -> bytes | web.Response:
    """The request body (decompressed by aiohttp), or the answer refusing it: 413 over the
    limit, 400 for a body its Content-Encoding cannot decode (found by fuzzing: that was a
    500)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        in_metrics.REJECTED.labels(channel, "too_large").inc()
        raise
    except (HttpProcessingError, RequestPayloadError) as exc:
        cause = exc.__cause__ or exc
        return _reject_request(channel, "bad_encoding", f"cannot decode the body "
                               f"({request.headers.get('Content-Encoding', 'identity')}): "
                               f"{type(cause).__name__}")


def _answer(items: list[Parsed] | None, results: list[ItemResult]) -> web.Response:
    """202 with a per-item result when anything was taken in; 400 when nothing was."""
    counts = summary(results)
    body: dict[str, Any] = {**counts, "items": [r.as_json() for r in results]}
    if counts["accepted"]:
        return web.json_response(body, status=202)
    if items is not None and len(items) == 1 and isinstance(items[0], InputError):
        body = {"error": str(items[0]), "reason": items[0].reason} | body
    return web.json_response(body, status=400)


async def _ready_body(request: web.Request, channel: str
                      ) -> tuple[Ingestor, bytes | web.Response]:
    """The ingestor and the request's body, or the answer refusing the request: 503 while
    the dedup memory is replayed, else as `_read_body`."""
    ingestor = request.app[INGESTOR]
    if not ingestor.ready:
        return ingestor, _reject_request(channel, "starting", "ingestor is starting", 503)
    return ingestor, await _read_body(request, channel)


async def post_articles(request: web.Request) -> web.Response:
    """Accept one JSON article, a JSON array, JSON Lines, an RSS/Atom document, an HTML page
    or plain text. `?source=` names the source of items that name none."""
    ingestor, body = await _ready_body(request, "http")
    if isinstance(body, web.Response):
        return body
    in_metrics.BYTES.labels("http").inc(len(body))
    if not body.strip():
        return _reject_request("http", "empty_body", "empty body")
    source = request.query.get("source", "http")[:100] or "http"
    items = await parse_off_loop(body, name="body", default_source=source)
    return _answer(items, await ingestor.intake.take(items, "http"))


async def post_fetch(request: web.Request) -> web.Response:
    """`{"url": "https://...", "source": "..."}`: fetch a page or feed and ingest it."""
    ingestor, body = await _ready_body(request, "page")
    if isinstance(body, web.Response):
        return body
    try:
        payload = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return _reject_request("page", "invalid_json", f"malformed JSON: {exc}")
    url = payload.get("url") if isinstance(payload, dict) else None
    if not isinstance(url, str) or not url.strip():
        return _reject_request("page", "missing_url", 'expected {"url": "http(s)://..."}')
    source = payload.get("source")
    try:
        results = await ingestor.take_url(url.strip(), channel="page",
                                          default_source=str(source) if source else None)
    except FetchError as exc:
        in_metrics.REJECTED.labels("page", exc.reason).inc()
        in_metrics.ARTICLES.labels("page", Outcome.REJECTED).inc()
        upstream = exc.reason in ("timeout", "connect_error", "http_status", "dns_error")
        return web.json_response({"error": str(exc), "reason": exc.reason},
                                 status=502 if upstream else 400)
    return _answer(None, results)


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


def feed_publisher(ingestor: Ingestor) -> Callable[[list[Parsed], FeedConfig],
                                                   Awaitable[int]]:
    async def on_items(items: list[Parsed], feed: FeedConfig) -> int:
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


async def run(settings: IngestorSettings, kafka: KafkaSettings, topics: TopicSettings,
              auth: AuthSettings) -> None:
    ingestor = Ingestor.from_settings(settings, kafka, topics)
    await ingestor.open()
    poller = FeedPoller(settings.feeds_file, ingestor.fetcher, feed_publisher(ingestor),
                        default_interval=settings.feed_interval_s,
                        max_backoff=settings.feed_max_backoff_s)
    inbox = StreamProcessor(service=SERVICE, kafka=kafka, input_topic=topics.inbox,
                            model=RawDocument, group_id=settings.group_id,
                            handler=inbox_handler(ingestor), batch_size=16)

    def readiness() -> tuple[bool, dict[str, object]]:
        connected = ingestor.producer.client.cluster.brokers() != set()
        return ingestor.ready and connected, {
            "topic": topics.articles, "seen_stories": len(ingestor.judge.index),
            "feeds": len(poller.states), "inbox_assigned": inbox.ready,
            "dedup_window_hours": settings.dedup_window_hours}

    token = auth.ingestor_token
    warn_if_exposed(SERVICE, settings.host, token, "RADAR_INGESTOR_TOKEN")
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[
        token_middleware(SERVICE, token, OPEN_PATHS, realm="radar-ingestor")])
    app[INGESTOR] = ingestor
    app.add_routes([web.post("/articles", post_articles), web.post("/fetch", post_fetch),
                    *metrics.ops_routes(SERVICE, readiness)])
    runner = await metrics.start_http(app, settings.host, settings.port)
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
