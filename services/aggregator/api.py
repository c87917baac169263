"""The query API: JSON over HTTP on each aggregator worker's Faust web server.

With several workers, each owns some partitions of the tables. A single-key query
(`/alliances/{id}`, `/alliances/{id}/history`, `/companies/{name}`) is forwarded to the worker
owning the key's partition (one hop, marked with `X-Radar-Routed` so it never bounces); a list
query (`/alliances`, `/graph`) asks every owning worker for its share (`scope=local`) and
merges, checking that the shares cover every partition exactly once. During a start or a
rebalance, when that cannot be guaranteed, the answer is 503 with a message: never a
silently partial view. Every answer names the worker that produced it in `X-Radar-Worker`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError
from yarl import URL

from services.aggregator.app import (
    SERVICE,
    _topics,
    active_partitions,
    alliances,
    app,
    companies,
    key_partition,
    load_index,
    load_state,
    local_states,
    progress,
    settings,
)
from services.aggregator.index import company_key
from services.aggregator.openapi import openapi_document
from services.aggregator.queries import (
    AllianceList,
    Filters,
    Health,
    QueryError,
    Scope,
    alliance_list,
    build_graph,
    company_view,
    history_of,
    parse_scope,
    reject_unknown,
    summarize,
)
from services.aggregator.routing import missing_partitions, owners, same_worker, workers
from shared import metrics
from shared.auth import bearer_headers, token_middleware, warn_if_exposed
from shared.contracts import AllianceState
from shared.settings import auth

ROUTED_HEADER = "X-Radar-Routed"
WORKER_HEADER = "X-Radar-Worker"
#: Paths answered without the read token: Prometheus scrapes, orchestrators probe, and the
#: API's description (it holds no data).
OPEN_PATHS = ("/metrics", "/health", "/openapi.json")
API_TOKEN = auth().api_token


class Unavailable(Exception):
    """The cluster cannot give a complete, correct answer right now (503)."""


def _me() -> str:
    return str(app.conf.canonical_url)


def _send(view: View, model: BaseModel, status: int = 200) -> Response:
    return view.bytes(model.model_dump_json().encode(), content_type="application/json",
                      status=status, headers={WORKER_HEADER: _me()})


def _error(view: View, status: int, message: str) -> Response:
    return view.bytes(json.dumps({"error": message}).encode(),
                      content_type="application/json", status=status,
                      headers={WORKER_HEADER: _me()})


def _changelog(table: faust.Table) -> str:
    return table.changelog_topic.get_topic_name()


def _assignment(table: faust.Table) -> dict:
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        raise Unavailable("this worker is rebalancing or restoring its tables; retry shortly")
    metadata = app.router.table_metadata(table.name)
    missing = missing_partitions(metadata, _changelog(table), _topics.partitions)
    if missing:
        raise Unavailable(f"partitions {missing} of table {table.name!r} have no worker yet "
                          "(starting or rebalancing); retry shortly")
    return metadata


async def _fetch(url: URL) -> tuple[int, bytes, str | None]:
    timeout = aiohttp.ClientTimeout(total=settings.peer_timeout_s)
    try:
        headers = {ROUTED_HEADER: "1", **bearer_headers(API_TOKEN)}  # peers check it too
        async with app.http_client.get(url, headers=headers, timeout=timeout) as resp:
            return resp.status, await resp.read(), resp.headers.get(WORKER_HEADER)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unavailable(f"worker {url.origin()} did not answer: "
                          f"{exc!r}; retry once the group has rebalanced") from None


async def _by_owner(view: View, request: Request, table: faust.Table, key: bytes,
                    answer: Callable[[], Response]) -> Response:
    """`answer()` here if this worker owns `key`, else the owner's answer."""
    try:
        metadata = _assignment(table)
        partition = key_partition(key)
        owner = owners(metadata, _changelog(table))[partition]
        if same_worker(owner, _me()):
            if partition not in active_partitions(table):
                raise Unavailable(f"partition {partition} is moving to this worker; retry")
            return answer()
        if request.headers.get(ROUTED_HEADER):
            raise Unavailable(f"asked for partition {partition}, which worker {owner} owns "
                              "(assignment changing); retry")
        status, body, worker = await _fetch(URL(owner).join(request.rel_url))
        return view.bytes(body, content_type="application/json", status=status,
                          headers={WORKER_HEADER: worker or owner})
    except Unavailable as exc:
        return _error(view, 503, str(exc))


def _local_list(filters: Filters) -> AllianceList:
    owned = sorted(active_partitions(alliances))
    return alliance_list((summarize(s) for s in local_states() if filters.matches(s)),
                         partitions=owned)


async def _gather(filters: Filters) -> AllianceList:
    """Every owning worker's share, merged; each partition covered exactly once."""
    metadata = _assignment(alliances)
    query = filters.params() | {"scope": Scope.LOCAL}

    async def share(url: str) -> AllianceList:
        if same_worker(url, _me()):
            return _local_list(filters)
        status, body, _ = await _fetch(URL(url).with_path("/alliances").with_query(query))
        if status != 200:
            text = body[:200].decode(errors="replace")
            raise Unavailable(f"worker {url} answered {status}: {text}")
        try:
            return AllianceList.model_validate_json(body)
        except ValidationError as exc:
            raise Unavailable(f"worker {url} answered an unreadable list: {exc}") from None

    shares = await asyncio.gather(*(share(url) for url in workers(metadata,
                                                                   _changelog(alliances))))
    covered = sorted(p for s in shares for p in s.partitions)
    if covered != list(range(_topics.partitions)):
        raise Unavailable(f"workers answered for partitions {covered} (assignment changing); "
                          "retry")
    return alliance_list((row for s in shares for row in s.alliances), partitions=covered)


async def _list(request: Request) -> AllianceList:
    filters = Filters.from_query(request.query)
    if parse_scope(request.query.get("scope")) == Scope.LOCAL:
        _assignment(alliances)
        return _local_list(filters)
    return await _gather(filters)


@app.page("/alliances")
class AlliancesPage(View):
    """GET /alliances?company=&stage=&since=: the live view, filtered, from every worker."""

    async def get(self, request: Request) -> Response:
        try:
            return _send(self, await _list(request))
        except QueryError as exc:
            return _error(self, 400, str(exc))
        except Unavailable as exc:
            return _error(self, 503, str(exc))


def _alliance_key(view: View, request: Request, alliance_id: str) -> bytes | Response:
    try:
        reject_unknown(request.query, ())
    except QueryError as exc:
        return _error(view, 400, str(exc))
    return alliance_id.encode()


def _not_found(view: View, alliance_id: str) -> Response:
    return _error(view, 404, f"no alliance with id {alliance_id!r} (ids are the party "
                  "slugs, sorted, joined by '+', e.g. honda+nissan)")


async def _one_alliance(view: View, request: Request, alliance_id: str,
                        render: Callable[[AllianceState], Any]) -> Response:
    """Answer about one alliance from the worker that owns its partition."""
    key = _alliance_key(view, request, alliance_id)
    if not isinstance(key, bytes):
        return key

    def answer() -> Response:
        state = load_state(alliances.get(key))
        return _send(view, render(state)) if state else _not_found(view, alliance_id)

    return await _by_owner(view, request, alliances, key, answer)


@app.page("/alliances/{alliance_id}")
class AlliancePage(View):
    """GET /alliances/{alliance_id}: one alliance, answered by the worker that owns it."""

    async def get(self, request: Request, alliance_id: str) -> Response:
        return await _one_alliance(self, request, alliance_id, summarize)


@app.page("/alliances/{alliance_id}/history")
class AllianceHistoryPage(View):
    """GET /alliances/{alliance_id}/history: transitions with evidence, and observations."""

    async def get(self, request: Request, alliance_id: str) -> Response:
        return await _one_alliance(self, request, alliance_id, history_of)


@app.page("/companies/{name}")
class CompanyPage(View):
    """GET /companies/{name}: partners by stage, from the company index."""

    async def get(self, request: Request, name: str) -> Response:
        try:
            reject_unknown(request.query, ())
            key = company_key(name).encode()
        except (QueryError, ValueError) as exc:
            return _error(self, 400, str(exc))

        def answer() -> Response:
            index = load_index(companies.get(key))
            if index is None:
                return _error(self, 404, f"no alliances known for company {name!r}")
            return _send(self, company_view(index))

        return await _by_owner(self, request, companies, key, answer)


@app.page("/graph")
class GraphPage(View):
    """GET /graph?company=&stage=&since=: companies as nodes, alliances as edges."""

    async def get(self, request: Request) -> Response:
        try:
            if "scope" in request.query:
                raise QueryError("/graph has no scope parameter")
            listed = await _list(request)
            return _send(self, build_graph(listed.alliances))
        except QueryError as exc:
            return _error(self, 400, str(exc))
        except Unavailable as exc:
            return _error(self, 503, str(exc))


@app.page("/openapi.json")
class OpenApiPage(View):
    """GET /openapi.json: the OpenAPI 3.1 document of this API."""

    async def get(self, request: Request) -> Response:
        return self.bytes(json.dumps(openapi_document()).encode(),
                          content_type="application/json")


def _local_count(table: faust.Table, owned: Iterable[int]) -> int:
    owned = set(owned)
    return sum(1 for key in list(table.keys()) if key_partition(key) in owned)


def readiness() -> Health:
    consumer = app.consumer if app.producer is not None else None
    assigned = len(consumer.assignment()) if consumer is not None else 0
    recovered = app.tables.recovery.completed.is_set()
    ready = bool(app.started and assigned and recovered and not app.rebalancing)
    stalls = progress.stalls(time.monotonic()) if ready else []
    owned = sorted(active_partitions(alliances)) if consumer is not None else []
    metadata = app.router.table_metadata(alliances.name) if consumer is not None else {}
    status = ("stalled" if stalls else "ready") if ready else "starting"
    return Health(service=SERVICE, status=status, stalled=[s.as_json() for s in stalls],
                  assigned_partitions=assigned, recovered=recovered, partitions=owned,
                  alliances=_local_count(alliances, owned),
                  workers=workers(metadata, _changelog(alliances)), worker=_me())


@app.page("/health")
class HealthPage(View):
    async def get(self, request: Request) -> Response:
        health = readiness()
        ready = health.status == "ready"
        metrics.PIPELINE.up.labels(SERVICE).set(1 if ready else 0)
        return _send(self, health, status=200 if ready else 503)


# Every route of the Faust web server (ours, and Faust's own) goes through the token check.
warn_if_exposed(SERVICE, settings.host, API_TOKEN, "RADAR_API_TOKEN")
app.web.web_app.middlewares.append(
    token_middleware(SERVICE, API_TOKEN, OPEN_PATHS, realm="radar-query-api"))
