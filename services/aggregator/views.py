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
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import aiohttp
import faust
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError
from yarl import URL

from services.aggregator.listing import CompanyEntry, encode_cursor
from services.aggregator.openapi import openapi_document
from services.aggregator.queries import (
    COMPANY_LIMIT,
    COMPANY_SEARCH_PARAMS,
    GRAPH_DEPTH,
    GRAPH_LIMIT,
    GRAPH_PARAMS,
    AllianceList,
    AllianceSummary,
    CompanyMatches,
    Filters,
    Graph,
    Health,
    Page,
    QueryError,
    Scope,
    alliance_list,
    build_graph,
    company_matches,
    company_view,
    history_of,
    parse_companies,
    parse_prefix,
    parse_scope,
    reject_unknown,
    summarize,
)
from services.aggregator.routing import missing_partitions, owners, same_worker, workers
from services.aggregator.stream import register as stream_register
from services.aggregator.stream import serve as serve_changes
from services.aggregator.tables import load_index, load_state
from services.aggregator.wiring import SERVICE, Aggregator
from shared import metrics
from shared.auth import bearer_headers, token_middleware, warn_if_exposed
from shared.contracts import AllianceState, company_key

M = TypeVar("M", bound=BaseModel)
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

    async def shares(self, table: faust.Table, path: str, query: dict[str, str],
                     model: type[M], local: Callable[[], M]) -> list[M]:
        """Every owning worker's share of a list (`scope=local` answers, this worker's
        computed here), checked to cover every partition exactly once."""
        metadata = self.assignment(table)

        async def share(url: str) -> M:
            if same_worker(url, self.me):
                return local()
            status, body, _ = await self.fetch(URL(url).with_path(path).with_query(query))
            if status != 200:
                text = body[:200].decode(errors="replace")
                raise Unavailable(f"worker {url} answered {status}: {text}")
            try:
                return model.model_validate_json(body)
            except ValidationError as exc:
                raise Unavailable(f"worker {url} answered an unreadable share: {exc}") \
                    from None

        got = await asyncio.gather(*(share(url) for url in
                                     workers(metadata, _changelog(table))))
        covered = sorted(p for s in got for p in s.partitions)
        if covered != list(range(self.agg.topics.partitions)):
            raise Unavailable(f"workers answered for partitions {covered} (assignment "
                              "changing); retry")
        return got

    def local_page(self, filters: Filters, page: Page,
                   companies: frozenset[str] | None = None) -> AllianceList:
        """This worker's first `page.limit` alliances after the cursor, from the ordered
        index, read from the table."""
        tables = self.agg.tables
        owned = sorted(tables.active_partitions(tables.alliances))
        entries, more = tables.alliance_index.page(owned, filters.selection(companies),
                                                   page.after, page.limit)
        rows = [summarize(state) for e in entries
                if (state := load_state(tables.alliances.get(e.alliance_id.encode())))]
        return alliance_list(rows, owned, more=more, filters=filters)

    async def gather(self, filters: Filters, page: Page,
                     companies: frozenset[str] | None = None) -> AllianceList:
        """One page of the whole view: each worker's first `limit` after the cursor,
        merged, the first `limit` of those kept."""
        cursor = encode_cursor(page.after, filters.fingerprint()) if page.after else None
        query = filters.params() | page.params(cursor) | {"scope": Scope.LOCAL}
        if companies is not None:
            query["companies"] = ",".join(sorted(companies))
        got = await self.shares(self.agg.tables.alliances, "/alliances", query, AllianceList,
                                lambda: self.local_page(filters, page, companies))
        return alliance_list((row for s in got for row in s.alliances),
                             partitions=(p for s in got for p in s.partitions),
                             limit=page.limit, more=any(s.next_cursor for s in got),
                             filters=filters)

    async def listed(self, request: Request) -> AllianceList:
        filters = Filters.from_query(request.query)
        page = Page.from_query(request.query, filters)
        companies = parse_companies(request.query.get("companies"))
        if parse_scope(request.query.get("scope")) == Scope.LOCAL:
            self.assignment(self.agg.tables.alliances)
            return self.local_page(filters, page, companies)
        if companies is not None:
            raise QueryError("companies is what workers ask each other (with scope=local); "
                             "use company")
        return await self.gather(filters, page)

    async def one_alliance(self, request: Request, alliance_id: str,
                           render: Callable[[AllianceState], Any]) -> Response:
        """Answer about one alliance from the worker that owns its partition."""
        try:
            reject_unknown(request.query, ())
        except QueryError as exc:
            return self.error(400, str(exc))
        key = alliance_id.encode()

        def answer() -> Response:
            state = load_state(self.agg.tables.alliances.get(key))
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
            reject_unknown(request.query, ())
            key = company_key(name).encode()
        except (QueryError, ValueError) as exc:
            return self.error(400, str(exc))

        def answer() -> Response:
            index = load_index(self.agg.tables.companies.get(key))
            if index is None:
                return self.error(404, f"no alliances known for company {name!r}")
            return self.send(company_view(index))

        return await self.by_owner(request, self.agg.tables.companies, key, answer)


class GraphPage(RadarView):
    """GET /graph?company=&depth=&stage=&since=&until=&limit=&cursor=: companies as nodes,
    alliances as edges; a company's neighbourhood, or the edges of one page of the list."""

    async def get(self, request: Request) -> Response:
        try:
            query = request.query
            filters = Filters.from_query(query, GRAPH_PARAMS)
            if filters.company is None:
                if "depth" in query:
                    raise QueryError("depth walks from a company: give company too")
                page = Page.from_query(query, filters, GRAPH_LIMIT)
                listed = await self.gather(filters, page)
                return self.send(build_graph(listed.alliances, listed.next_cursor))
            if "cursor" in query:
                raise QueryError("cursor pages the graph without company; with company, "
                                 "widen limit or depth instead")
            depth = GRAPH_DEPTH.parse("depth", query.get("depth"))
            limit = GRAPH_LIMIT.parse("limit", query.get("limit"))
            return self.send(await self.neighbourhood(filters, depth, limit))
        except QueryError as exc:
            return self.error(400, str(exc))
        except Unavailable as exc:
            return self.error(503, str(exc))

    async def neighbourhood(self, filters: Filters, depth: int, limit: int) -> Graph:
        """Breadth first from the company over the company index of every worker: each hop
        lists the alliances (matching the filters) of the companies reached by the last
        one; at most `limit` alliances in all."""
        around = replace(filters, company=None)
        assert filters.company is not None
        seen, frontier = {filters.company}, {filters.company}
        found: dict[str, AllianceSummary] = {}
        truncated = False
        for _ in range(depth):
            hop = await self.gather(around, Page(limit), companies=frozenset(frontier))
            new = [row for row in hop.alliances if row.alliance_id not in found]
            room = limit - len(found)
            # rows past the hop's page may hold new alliances too
            truncated = len(new) > room or hop.next_cursor is not None
            for row in new[:room]:
                found[row.alliance_id] = row
            frontier = {company_key(p) for row in new[:room] for p in row.parties} - seen
            seen |= frontier
            if truncated or not frontier:
                break
        graph = build_graph(found.values())
        return graph.model_copy(update={"truncated": truncated})


class CompanySearchPage(RadarView):
    """GET /companies?q=&limit=: type-ahead over the company index of every worker."""

    async def get(self, request: Request) -> Response:
        try:
            query = request.query
            reject_unknown(query, COMPANY_SEARCH_PARAMS)
            prefix = parse_prefix(query.get("q"))
            limit = COMPANY_LIMIT.parse("limit", query.get("limit"))
            companies = self.agg.tables.companies
            if parse_scope(query.get("scope")) == Scope.LOCAL:
                self.assignment(companies)
                return self.send(self.local_matches(prefix, limit))
            got = await self.shares(companies, "/companies",
                                    {"q": prefix, "limit": str(limit), "scope": Scope.LOCAL},
                                    CompanyMatches, lambda: self.local_matches(prefix, limit))
            rows = [CompanyEntry(m.key, m.name, m.alliance_count)
                    for s in got for m in s.companies]
            return self.send(company_matches(rows, prefix, limit,
                                             (p for s in got for p in s.partitions)))
        except QueryError as exc:
            return self.error(400, str(exc))
        except Unavailable as exc:
            return self.error(503, str(exc))

    def local_matches(self, prefix: str, limit: int) -> CompanyMatches:
        tables = self.agg.tables
        owned = sorted(tables.active_partitions(tables.companies))
        return company_matches(tables.company_names.search(owned, prefix, limit), prefix,
                               limit, owned)


class ChangeStreamPage(RadarView):
    """GET /changes/stream?company=&stage=: changes as Server-Sent Events (`stream.py`)."""

    async def get(self, request: Request) -> Any:
        return await serve_changes(self.agg, request)


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
    ("/companies", CompanySearchPage),
    ("/companies/{name}", CompanyPage),
    ("/graph", GraphPage),
    ("/changes/stream", ChangeStreamPage),
    ("/openapi.json", OpenApiPage),
    ("/health", HealthPage),
)


def register(agg: Aggregator) -> None:
    """Add the query API's views to `agg.app`, and the token check in front of every route
    of the Faust web server (ours, and Faust's own)."""
    for path, view in ROUTES:
        agg.app.page(path, name=view.__name__)(type(view.__name__, (view,), {"agg": agg}))
    stream_register(agg)
    token = agg.auth.api_token
    warn_if_exposed(SERVICE, agg.settings.host, token, "RADAR_API_TOKEN")
    agg.app.web.web_app.middlewares.append(
        token_middleware(SERVICE, token, OPEN_PATHS, realm="radar-query-api"))
