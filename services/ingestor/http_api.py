"""The ingestor's HTTP doors: POST /articles (one JSON article, a JSON array, JSON Lines,
RSS/Atom, HTML, text) and POST /fetch (a URL to fetch), behind the write token, beside
/metrics and /health. `http_app` builds the aiohttp application around one `Ingestor`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from services.ingestor import metrics as in_metrics
from services.ingestor.dedup import Outcome
from services.ingestor.documents import parse_off_loop
from services.ingestor.fetch import FetchError
from services.ingestor.publish import ItemResult, summary
from services.ingestor.sources import InputError, Parsed
from services.ingestor.wiring import SERVICE, Ingestor
from shared import metrics
from shared.auth import token_middleware, warn_if_exposed
from shared.settings import AuthSettings

#: Paths answered without the write token: Prometheus scrapes, orchestrators probe.
OPEN_PATHS = ("/metrics", "/health")
INGESTOR = web.AppKey("ingestor", Ingestor)


def http_app(ingestor: Ingestor, auth: AuthSettings,
             readiness: metrics.Readiness) -> web.Application:
    """The doors, /metrics and /health, every route but those two behind the token."""
    settings = ingestor.settings
    token = auth.ingestor_token
    warn_if_exposed(SERVICE, settings.host, token, "RADAR_INGESTOR_TOKEN")
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[
        token_middleware(SERVICE, token, OPEN_PATHS, realm="radar-ingestor")])
    app[INGESTOR] = ingestor
    app.add_routes([web.post("/articles", post_articles), web.post("/fetch", post_fetch),
                    *metrics.ops_routes(SERVICE, readiness)])
    return app


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
