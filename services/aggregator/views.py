"""The query API: JSON over HTTP on each aggregator worker's Faust web server, registered
on the app by `register` (one `View` class per route in `ROUTES`; a new view is a class and
a line there, or a module of its own with its own `register`).

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
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import aiohttp
import faust
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError
from yarl import URL

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
    parse_as_of,
    parse_scope,
    reject_unknown,
    summarize,
)
from services.aggregator.routing import missing_partitions, owners, same_worker, workers
from services.aggregator.tables import load_index, load_state
from services.aggregator.timetravel import as_of, company_view_of, states_as_of
from services.aggregator.wiring import SERVICE, Aggregator
from shared import metrics
from shared.auth import bearer_headers, token_middleware, warn_if_exposed
from shared.contracts import AllianceState, company_key

ROUTED_HEADER = "X-Radar-Routed"
WORKER_HEADER = "X-Radar-Worker"
#: Paths answered without the read token: Prometheus scrapes, orchestrators probe, and the
#: API's description (it holds no data).
OPEN_PATHS = ("/metrics", "/health", "/openapi.json")


class Unavailable(Exception):
    """The cluster cannot give a complete, correct answer right now (503)."""


def _changelog(table: faust.Table) -> str:
    return table.changelog_topic.get_topic_name()


class RadarView(View):
    """A view of the query API; `agg` is set by `register` on the class it adds."""

    agg: ClassVar[Aggregator]

    @property
    def me(self) -> str:
        """This worker's URL."""
        return str(self.app.conf.canonical_url)

    def send(self, model: BaseModel, status: int = 200) -> Response:
        return self.bytes(model.model_dump_json().encode(), content_type="application/json",
                          status=status, headers={WORKER_HEADER: self.me})

    def error(self, status: int, message: str) -> Response:
        return self.bytes(json.dumps({"error": message}).encode(),
                          content_type="application/json", status=status,
                          headers={WORKER_HEADER: self.me})

    def assignment(self, table: faust.Table) -> dict:
        app = self.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            raise Unavailable("this worker is rebalancing or restoring its tables; retry "
                              "shortly")
        metadata = app.router.table_metadata(table.name)
        missing = missing_partitions(metadata, _changelog(table), self.agg.topics.partitions)
        if missing:
            raise Unavailable(f"partitions {missing} of table {table.name!r} have no worker "
                              "yet (starting or rebalancing); retry shortly")
        return metadata

    async def fetch(self, url: URL) -> tuple[int, bytes, str | None]:
        timeout = aiohttp.ClientTimeout(total=self.agg.settings.peer_timeout_s)
        try:
            # peers check the token too
            headers = {ROUTED_HEADER: "1", **bearer_headers(self.agg.auth.api_token)}
            async with self.app.http_client.get(url, headers=headers,
                                                timeout=timeout) as resp:
                return resp.status, await resp.read(), resp.headers.get(WORKER_HEADER)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"worker {url.origin()} did not answer: "
                              f"{exc!r}; retry once the group has rebalanced") from None

    async def by_owner(self, request: Request, table: faust.Table, key: bytes,
                       answer: Callable[[], Response]) -> Response:
        """`answer()` here if this worker owns `key`, else the owner's answer."""
        tables = self.agg.tables
        try:
            metadata = self.assignment(table)
            partition = tables.key_partition(key)
            owner = owners(metadata, _changelog(table))[partition]
            if same_worker(owner, self.me):
                if partition not in tables.active_partitions(table):
                    raise Unavailable(f"partition {partition} is moving to this worker; "
                                      "retry")
                return answer()
            if request.headers.get(ROUTED_HEADER):
                raise Unavailable(f"asked for partition {partition}, which worker {owner} "
                                  "owns (assignment changing); retry")
            status, body, worker = await self.fetch(URL(owner).join(request.rel_url))
            return self.bytes(body, content_type="application/json", status=status,
                              headers={WORKER_HEADER: worker or owner})
        except Unavailable as exc:
            return self.error(503, str(exc))

    def local_list(self, filters: Filters) -> AllianceList:
        tables = self.agg.tables
        owned = sorted(tables.active_partitions(tables.alliances))
        states = states_as_of(tables.local_states(), filters.as_of, self.agg.rules)
        return alliance_list((summarize(s) for s in states if filters.matches(s)),
                             partitions=owned)

    async def gather(self, filters: Filters) -> AllianceList:
        """Every owning worker's share, merged; each partition covered exactly once."""
        alliances = self.agg.tables.alliances
        metadata = self.assignment(alliances)
        query = filters.params() | {"scope": Scope.LOCAL}

        async def share(url: str) -> AllianceList:
            if same_worker(url, self.me):
                return self.local_list(filters)
            status, body, _ = await self.fetch(URL(url).with_path("/alliances")
                                               .with_query(query))
            if status != 200:
                text = body[:200].decode(errors="replace")
                raise Unavailable(f"worker {url} answered {status}: {text}")
            try:
                return AllianceList.model_validate_json(body)
            except ValidationError as exc:
                raise Unavailable(f"worker {url} answered an unreadable list: {exc}") \
                    from None

        shares = await asyncio.gather(*(share(url) for url in
                                        workers(metadata, _changelog(alliances))))
        covered = sorted(p for s in shares for p in s.partitions)
        if covered != list(range(self.agg.topics.partitions)):
            raise Unavailable(f"workers answered for partitions {covered} (assignment "
                              "changing); retry")
        return alliance_list((row for s in shares for row in s.alliances),
                             partitions=covered)

    async def listed(self, request: Request) -> AllianceList:
        filters = Filters.from_query(request.query)
        if parse_scope(request.query.get("scope")) == Scope.LOCAL:
            self.assignment(self.agg.tables.alliances)
            return self.local_list(filters)
        return await self.gather(filters)

    async def one_alliance(self, request: Request, alliance_id: str,
                           render: Callable[[AllianceState], Any]) -> Response:
        """Answer about one alliance from the worker that owns its partition."""
        try:
            reject_unknown(request.query, ("as_of",))
            when = parse_as_of(request.query.get("as_of"))
        except QueryError as exc:
            return self.error(400, str(exc))
        key = alliance_id.encode()

        def answer() -> Response:
            state = load_state(self.agg.tables.alliances.get(key))
            if state is not None and when is not None:
                state = as_of(state, when, self.agg.rules)
                if state is None:
                    return self.error(404, f"alliance {alliance_id!r} had no news published "
                                      f"by {when.isoformat()}")
            if state is None:
                return self.error(404, f"no alliance with id {alliance_id!r} (ids are the "
                                  "party slugs, sorted, joined by '+', e.g. honda+nissan)")
            return self.send(render(state))

        return await self.by_owner(request, self.agg.tables.alliances, key, answer)


class AlliancesPage(RadarView):
    """GET /alliances?company=&stage=&since=: the live view, filtered, from every worker."""

    async def get(self, request: Request) -> Response:
        try:
            return self.send(await self.listed(request))
        except QueryError as exc:
            return self.error(400, str(exc))
        except Unavailable as exc:
            return self.error(503, str(exc))


class AlliancePage(RadarView):
    """GET /alliances/{alliance_id}: one alliance, answered by the worker that owns it."""

    async def get(self, request: Request, alliance_id: str) -> Response:
        return await self.one_alliance(request, alliance_id, summarize)


class AllianceHistoryPage(RadarView):
    """GET /alliances/{alliance_id}/history: transitions with evidence, and observations."""

    async def get(self, request: Request, alliance_id: str) -> Response:
        return await self.one_alliance(request, alliance_id, history_of)


class CompanyPage(RadarView):
    """GET /companies/{name}: partners by stage, from the company index."""

    async def get(self, request: Request, name: str) -> Response:
        try:
            reject_unknown(request.query, ("as_of",))
            key = company_key(name).encode()
            when = parse_as_of(request.query.get("as_of"))
        except (QueryError, ValueError) as exc:
            return self.error(400, str(exc))
        if when is not None:
            return await self.company_as_of(name, key.decode(), when)

        def answer() -> Response:
            index = load_index(self.agg.tables.companies.get(key))
            if index is None:
                return self.error(404, f"no alliances known for company {name!r}")
            return self.send(company_view(index))

        return await self.by_owner(request, self.agg.tables.companies, key, answer)

    async def company_as_of(self, name: str, key: str, when: datetime) -> Response:
        """The company's alliances as of `when`: the index holds only today's stages, so
        its alliances are gathered from every worker and refolded (timetravel.py)."""
        try:
            listed = await self.gather(Filters(company=key, as_of=when))
        except Unavailable as exc:
            return self.error(503, str(exc))
        view = company_view_of(key, listed.alliances)
        if view is None:
            return self.error(404, f"no alliances known for company {name!r} as of "
                              f"{when.isoformat()}")
        return self.send(view)


class GraphPage(RadarView):
    """GET /graph?company=&stage=&since=: companies as nodes, alliances as edges."""

    async def get(self, request: Request) -> Response:
        try:
            if "scope" in request.query:
                raise QueryError("/graph has no scope parameter")
            listed = await self.listed(request)
            return self.send(build_graph(listed.alliances))
        except QueryError as exc:
            return self.error(400, str(exc))
        except Unavailable as exc:
            return self.error(503, str(exc))


class OpenApiPage(RadarView):
    """GET /openapi.json: the OpenAPI 3.1 document of this API."""

    async def get(self, request: Request) -> Response:
        return self.bytes(json.dumps(openapi_document()).encode(),
                          content_type="application/json")


def readiness(agg: Aggregator) -> Health:
    app, tables = agg.app, agg.tables
    consumer = app.consumer if app.producer is not None else None
    assigned = len(consumer.assignment()) if consumer is not None else 0
    recovered = app.tables.recovery.completed.is_set()
    ready = bool(app.started and assigned and recovered and not app.rebalancing)
    stalls = agg.progress.stalls(time.monotonic()) if ready else []
    owned = sorted(tables.active_partitions(tables.alliances)) if consumer is not None else []
    metadata = app.router.table_metadata(tables.alliances.name) if consumer is not None \
        else {}
    status = ("stalled" if stalls else "ready") if ready else "starting"
    return Health(service=SERVICE, status=status, stalled=[s.as_json() for s in stalls],
                  assigned_partitions=assigned, recovered=recovered, partitions=owned,
                  alliances=tables.local_count(tables.alliances, set(owned)),
                  workers=workers(metadata, _changelog(tables.alliances)),
                  worker=str(app.conf.canonical_url))


class HealthPage(RadarView):
    async def get(self, request: Request) -> Response:
        health = readiness(self.agg)
        ready = health.status == "ready"
        metrics.PIPELINE.up.labels(SERVICE).set(1 if ready else 0)
        return self.send(health, status=200 if ready else 503)


ROUTES: tuple[tuple[str, type[RadarView]], ...] = (
    ("/alliances", AlliancesPage),
    ("/alliances/{alliance_id}", AlliancePage),
    ("/alliances/{alliance_id}/history", AllianceHistoryPage),
    ("/companies/{name}", CompanyPage),
    ("/graph", GraphPage),
    ("/openapi.json", OpenApiPage),
    ("/health", HealthPage),
)


def register(agg: Aggregator) -> None:
    """Add the query API's views to `agg.app`, and the token check in front of every route
    of the Faust web server (ours, and Faust's own)."""
    for path, view in ROUTES:
        agg.app.page(path, name=view.__name__)(type(view.__name__, (view,), {"agg": agg}))
    token = agg.auth.api_token
    warn_if_exposed(SERVICE, agg.settings.host, token, "RADAR_API_TOKEN")
    agg.app.web.web_app.middlewares.append(
        token_middleware(SERVICE, token, OPEN_PATHS, realm="radar-query-api"))
