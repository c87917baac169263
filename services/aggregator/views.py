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
import heapq
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiohttp
import faust
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError
from yarl import URL

from services.aggregator.listing import AllianceEntry, CompanyEntry, decode_cursor, encode_cursor
from services.aggregator.openapi import openapi_document
from services.aggregator.queries import (
    COMPANY_LIMIT,
    COMPANY_SEARCH_PARAMS,
    GRAPH_DEPTH,
    GRAPH_LIMIT,
    GRAPH_PARAMS,
    LIST_LIMIT,
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
    parse_as_of,
    parse_companies,
    parse_prefix,
    parse_scope,
    reject_unknown,
    sort_key,
    summarize,
)
from services.aggregator.routing import missing_partitions, owners, same_worker, workers
from services.aggregator.stream import register as stream_register
from services.aggregator.stream import serve as serve_changes
from services.aggregator.tables import load_index, load_state
from services.aggregator.timetravel import as_of, company_view_of, states_as_of
from services.aggregator.wiring import SERVICE, Aggregator
from shared import metrics
from shared.auth import bearer_headers, token_middleware, warn_if_exposed
from shared.contracts import AllianceState, company_key

M = TypeVar("M", bound=BaseModel)
ROUTED_HEADER = "X-Radar-Routed"
WORKER_HEADER = "X-Radar-Worker"
#: Paths answered without the read token: Prometheus scrapes, orchestrators probe, and the
#: API's description (it holds no data). The alliance page and its static files are open too
#: (`page_paths`): they hold no data, and the page's own data calls carry the token.
OPEN_PATHS = ("/metrics", "/health", "/openapi.json")
#: The alliance page: plain HTML, CSS and JavaScript, and the graph library `make assets`
#: copies into vendor/ from the pinned npm package.
STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".js": "text/javascript; charset=utf-8"}
#: The page loads only what this server serves (no CDN, no inline script).
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def static_file(name: str, root: Path = STATIC_DIR) -> Path | None:
    """The servable file `name` under `root`, or None: unknown, a folder, another type, or
    a path that leaves `root` ("../", symlinks)."""
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or not path.is_file() or path.suffix not in STATIC_TYPES:
        return None
    return path


def page_paths(root: Path = STATIC_DIR) -> tuple[str, ...]:
    """The page's URL paths (open without the token): / and every static file."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if static_file(p.relative_to(root).as_posix(), root))
    return ("/", *(f"/static/{f}" for f in files))


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
        if filters.as_of is not None:
            return self.local_page_as_of(filters, page, companies, owned)
        entries, more = tables.alliance_index.page(owned, filters.selection(companies),
                                                   page.after, page.limit)
        rows = [summarize(state) for e in entries
                if (state := load_state(tables.alliances.get(e.alliance_id.encode())))]
        return alliance_list(rows, owned, more=more, filters=filters)

    def local_page_as_of(self, filters: Filters, page: Page,
                         companies: frozenset[str] | None, owned: list[int]) -> AllianceList:
        """This worker's page of the view as it stood at `filters.as_of`. The ordered index
        holds today's stages and dates only, so the past is refolded from every local
        alliance's kept observations (timetravel.py) and filtered, sorted and cut here:
        a scan, O(alliances) per page, which time travel pays and the live view does not."""
        selection = filters.selection(companies)
        rows = (summarize(state) for state in
                states_as_of(self.agg.tables.local_states(), filters.as_of, self.agg.rules)
                if selection.admits(AllianceEntry.of(state)))
        after = (row for row in rows if page.after is None or sort_key(row) < page.after)
        # the page and one more (so the list knows another page follows), not every row
        first = heapq.nlargest(page.limit + 1, after, key=sort_key)
        return alliance_list(first, owned, limit=page.limit, filters=filters)

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

    async def every_page(self, filters: Filters) -> list[AllianceSummary]:
        """Every alliance matching `filters`, page after page (for answers about one
        company, whose alliances are spread over every worker)."""
        rows: list[AllianceSummary] = []
        page = Page(LIST_LIMIT.maximum)
        while True:
            listed = await self.gather(filters, page)
            rows += listed.alliances
            if listed.next_cursor is None:
                return rows
            page = Page(page.limit, decode_cursor(listed.next_cursor, filters.fingerprint()))

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
            rows = await self.every_page(Filters(company=key, as_of=when))
        except Unavailable as exc:
            return self.error(503, str(exc))
        view = company_view_of(key, rows)
        if view is None:
            return self.error(404, f"no alliances known for company {name!r} as of "
                              f"{when.isoformat()}")
        return self.send(view)


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


class AssetView(RadarView):
    def asset(self, name: str) -> Response:
        path = static_file(name)
        if path is None:
            hint = " (run `make assets`)" if name.startswith("vendor/") else ""
            return self.error(404, f"no static file {name!r}{hint}")
        # The type goes in the headers: aiohttp refuses a charset in `content_type`.
        return self.bytes(path.read_bytes(), headers={
            **PAGE_HEADERS, "Content-Type": STATIC_TYPES[path.suffix], WORKER_HEADER: self.me})


class AlliancePageHtml(AssetView):
    """GET /: the alliance network page (it holds no data; it asks the API for it)."""

    async def get(self, request: Request) -> Response:
        return self.asset("index.html")


class StaticPage(AssetView):
    """GET /static/{name}: the page's scripts and styles."""

    async def get(self, request: Request, name: str) -> Response:
        return self.asset(name)


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
                  alliances=tables.alliance_count(set(owned)),
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
    ("/", AlliancePageHtml),
    ("/static/{name:.+}", StaticPage),
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
        token_middleware(SERVICE, token, OPEN_PATHS + page_paths(),
                         realm="radar-query-api"))
