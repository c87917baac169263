"""Extractor service: news.articles.v1 -> alliances.partnerships.v1 (thin Kafka wiring)."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from services.extractor import metrics as ex_metrics
from services.extractor.workers import ExtractorPool, PipelineSpec
from shared import logs, metrics
from shared.contracts import ArticleEvent, Contract
from shared.kafka import Outgoing, Processed, StreamProcessor, ensure_topics
from shared.logs import stop_on_signals
from shared.settings import ExtractorSettings, kafka, load, topics

log = logging.getLogger(__name__)
SERVICE = "extractor"


class ExtractorHandler:
    """Fans a batch out to the extractor pool (worker processes, or a thread with one
    process), so heartbeats and /health stay responsive; outcomes come back in input order.
    """

    def __init__(self, pool: ExtractorPool, out_topic: str) -> None:
        self.pool = pool
        self.out_topic = out_topic

    async def __call__(self, messages: list[Contract]) -> list[Processed]:
        articles = [m for m in messages if isinstance(m, ArticleEvent)]
        started = time.perf_counter()
        results = await self.pool.extract(articles)
        per_article = (time.perf_counter() - started) / max(len(articles), 1)
        outcomes = []
        for parsed, events in results:
            ex_metrics.SECONDS.observe(per_article)
            # The model's decider already keeps only events at or above the minimum
            # calibrated probability (RADAR_EXTRACTOR_MIN_CONFIDENCE or the trained one);
            # `parsed` is the cue gate's verdict from the pipeline (the gate runs once).
            ex_metrics.ARTICLES.labels("events" if events else "no_events" if parsed
                                       else "gated_out").inc()
            for event in events:
                ex_metrics.EVENTS.labels(event.stage.value).inc()
            outcomes.append(Processed(outputs=[Outgoing(self.out_topic, e) for e in events]))
        return outcomes


async def run() -> None:
    settings = load(ExtractorSettings)
    k, t = kafka(), topics()
    await ensure_topics(k, t, t.created_by(SERVICE))
    spec = PipelineSpec(settings.model, model_path=settings.partnership_model,
                        threshold=settings.min_confidence, gate_path=settings.article_gate)
    pool = ExtractorPool(spec, settings.processes)
    log.info("loading spaCy model %s and the partnership model in %d process(es)",
             settings.model, pool.processes)
    await asyncio.to_thread(pool.start)
    log.info("extractor %s, minimum confidence %.2f, %d extraction process(es)", pool.version,
             pool.threshold, pool.processes)
    processor = StreamProcessor(
        service=SERVICE, kafka=k, input_topic=t.articles, model=ArticleEvent,
        group_id=settings.group_id, batch_size=settings.batch_size,
        # One batch in hand per extraction process: an article arriving while a batch is
        # parsed goes to the idle worker instead of waiting for the batch (latency).
        concurrency=pool.processes, handler=ExtractorHandler(pool, t.partnerships))

    def readiness() -> tuple[bool, dict[str, object]]:
        return processor.ready, {"assigned_partitions": len(processor.consumer.assignment())
                                 if processor.ready else 0,
                                 "extraction_processes": pool.processes,
                                 "worker_pids": pool.pids}

    app = web.Application()
    app.add_routes(metrics.ops_routes(SERVICE, readiness))
    runner = await metrics.start_http(app, settings.host, settings.port)
    log.info("extractor HTTP on http://%s:%s", settings.host, settings.port)
    stop = stop_on_signals()
    await processor.start()
    try:
        await processor.run(stop)
    finally:
        await processor.stop()
        await runner.cleanup()
        await asyncio.to_thread(pool.close)


def main() -> None:
    logs.setup(SERVICE)
    asyncio.run(run())
