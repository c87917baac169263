"""Prometheus metrics shared by every service, and the ops HTTP endpoints.

Each service runs in its own process, so the default registry is per service; the `service`
label keeps series apart when one Prometheus scrapes them all. Service-specific metrics live in
`services/<name>/metrics.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web, web_urldispatcher
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class PipelineMetrics:
    consumed: Counter
    produced: Counter
    dlq: Counter
    processing_seconds: Histogram
    lag: Gauge
    up: Gauge
    stalled: Gauge


PIPELINE = PipelineMetrics(
    consumed=Counter("radar_messages_consumed_total", "Records read from Kafka.",
                     ["service", "topic"]),
    produced=Counter("radar_messages_produced_total", "Records written to Kafka.",
                     ["service", "topic"]),
    dlq=Counter("radar_dlq_records_total", "Records sent to a dead-letter topic, by reason.",
                ["service", "topic", "reason"]),
    processing_seconds=Histogram("radar_batch_processing_seconds",
                                 "Time to process one consumed batch.", ["service"],
                                 buckets=LATENCY_BUCKETS),
    lag=Gauge("radar_consumer_lag_records", "High watermark minus position.",
              ["service", "topic", "partition"]),
    up=Gauge("radar_service_ready", "1 when the service is connected and assigned.",
             ["service"]),
    stalled=Gauge("radar_stalled_partitions", "Consumed partitions behind their end whose "
                  "committed offset has not moved for RADAR_STALL_AFTER_S.", ["service"]),
)

SEND_RETRIES = Counter("radar_send_retries_total", "Records sent again because the broker did "
                       "not acknowledge them (connection lost, timeout).", ["what"])


UNAUTHORIZED = Counter("radar_http_unauthorized_total", "HTTP requests refused for want of the "
                       "bearer token (reason: missing, malformed, wrong).",
                       ["service", "reason"])


Readiness = Callable[[], tuple[bool, dict[str, object]]]


async def metrics_view(_: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp


def health_view(service: str, readiness: Readiness):
    async def view(_: web.Request) -> web.Response:
        ready, detail = readiness()
        PIPELINE.up.labels(service).set(1 if ready else 0)
        body = {"service": service, "status": "ready" if ready else "starting"} | detail
        return web.json_response(body, status=200 if ready else 503)

    return view


async def expect_handler(request: web.Request) -> None:
    """`Expect: 100-continue` as aiohttp does it; any other expectation 417 without echoing
    it (found by fuzzing: aiohttp's default handler puts the header in its answer, and a
    non-UTF-8 value made that a 500). Installed below as aiohttp's default, so it covers
    every route of every server here: our handlers, 404/405 answers and Faust's pages
    (`install_expect_handler`)."""
    expect = request.headers.get("Expect", "")
    if request.version == (1, 1) and expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return
    if expect:
        raise web.HTTPExpectationFailed(text="unsupported Expect header")


def install_expect_handler() -> None:
    """Make `expect_handler` aiohttp's default. aiohttp looks its default up when each route
    (and each 404/405 answer) is made, so call this before any route exists: every service's
    web set-up does (`ops_routes`, the aggregator's app factory)."""
    web_urldispatcher._default_expect_handler = expect_handler


def ops_routes(service: str, readiness: Readiness) -> list[web.RouteDef]:
    """`/metrics` (Prometheus text) and `/health` (200 ready, 503 not yet)."""
    install_expect_handler()
    return [web.get("/metrics", metrics_view), web.get("/health", health_view(service, readiness))]


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
