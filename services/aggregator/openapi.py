"""The OpenAPI 3.1 document of the query API, built from the response models in `queries.py`.

Hand-assembled paths, generated schemas: the views send exactly these models, so the
document cannot drift from the answers (a test validates both the document and live answers).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.aggregator.queries import (
    COMPANY_LIMIT,
    GRAPH_DEPTH,
    GRAPH_LIMIT,
    LIST_LIMIT,
    AllianceHistory,
    AllianceList,
    AllianceSummary,
    CompanyMatches,
    CompanyView,
    ErrorBody,
    Graph,
    Health,
)
from shared.contracts import Stage

_MODELS: tuple[type[BaseModel], ...] = (AllianceList, AllianceSummary, AllianceHistory,
                                        CompanyView, CompanyMatches, Graph, Health, ErrorBody)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "A bad parameter; the message says which and why.",
        404: "Unknown id or company; the message names it.",
        503: "Starting or rebalancing: no complete answer yet; retry.",
    }
    return {str(code): _json(ErrorBody, meaning[code]) for code in codes}


def _query(name: str, description: str, schema: dict[str, Any],
           example: str | None = None) -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "description": description,
             "schema": schema}
    if example is not None:
        param["example"] = example
    return param


def _path(name: str, description: str, example: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}, "example": example}


FILTERS = [
    _query("company", "Only alliances with this company (canonical name or its slug, any "
           "case).", {"type": "string"}, "Nissan"),
    _query("stage", "Only alliances at this stage.",
           {"type": "string", "enum": [s.value for s in Stage]}, "talks"),
    _query("since", "Only alliances whose current stage was set at or after this ISO date "
           "(midnight UTC) or date-time.", {"type": "string"}, "2024-03-01"),
    _query("until", "Only alliances whose current stage was set at or before this ISO date "
           "(midnight UTC) or date-time.", {"type": "string"}, "2030-01-01"),
]
AS_OF = _query("as_of", "Time travel: the view as it stood at this instant, refolded with "
               "the same stage rules from the kept observations published up to it (an ISO "
               "date means the end of that day, UTC). Only the latest "
               "RADAR_AGGREGATOR_OBSERVATION_LIMIT (200) observations of an alliance are "
               "kept, so a very long history answers from those. An alliance with no news "
               "by then is left out (404 for one alliance or company).",
               {"type": "string"}, "2007-12-31")
FILTERS.append(AS_OF)
FILTERS_BUT_COMPANY = FILTERS[1:]
CURSOR = _query("cursor", "`next_cursor` of the previous page, as it came (opaque, "
                "url-safe, versioned; bound to the filters it was made with: other filters, a "
                "mangled or an old cursor answer 400). Paging is by (last_changed, "
                "alliance_id): an alliance that changes while you page moves to its new "
                "place, so it may be seen twice or not at all; every other is seen once.",
                {"type": "string"})


def _limit(what: str, limits: Any) -> dict[str, Any]:
    return _query("limit", what, {"type": "integer", "minimum": 1,
                                  "maximum": limits.maximum, "default": limits.default})


COMPANIES_HOP = _query("companies", "Internal (with scope=local): alliances of any of these "
                       "comma-separated company slugs, one hop of the /graph walk.",
                       {"type": "string"})
SCOPE = _query("scope", "`all` (default): the whole view, gathered from every worker. "
               "`local`: only the answering worker's partitions (what workers ask each "
               "other).", {"type": "string", "enum": ["all", "local"], "default": "all"})
ALLIANCE_ID = _path("alliance_id", "Alliance id: the party slugs, sorted, joined by '+'.",
                    "honda+nissan")
ROUTED = ("Answered by the worker owning the key's partition (forwarded if needed; the "
          "`X-Radar-Worker` header names it).")


def _get(summary: str, description: str, parameters: list[dict[str, Any]],
         responses: dict[str, Any], tag: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "description": description, "tags": [tag],
                    "parameters": parameters, "responses": responses}}


def _version() -> str:
    try:
        return version("alliance-radar")
    except PackageNotFoundError:  # a source tree run without installing
        return "0.0.0"


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (cached: it depends only on the code)."""
    _, defs = models_json_schema([(m, "serialization") for m in _MODELS],
                                 ref_template="#/components/schemas/{model}")
    paths = {
        "/alliances": _get(
            "List alliances", "The live alliance view, most recently changed first, "
            "gathered from every aggregator worker, one page at a time: each worker lists "
            "its first `limit` after the cursor from an ordered index, the merge keeps the "
            "first `limit`.",
            [*FILTERS, _limit("Alliances per page.", LIST_LIMIT), CURSOR, SCOPE,
             COMPANIES_HOP],
            {"200": _json(AllianceList, "Matching alliances."), **_errors(400, 503)},
            "alliances"),
        "/alliances/{alliance_id}": _get(
            "One alliance", f"The alliance's state without observations. {ROUTED}",
            [ALLIANCE_ID, AS_OF], {"200": _json(AllianceSummary, "The alliance."),
                            **_errors(400, 404, 503)}, "alliances"),
        "/alliances/{alliance_id}/history": _get(
            "Stage history of one alliance", "Every stage transition with its article and "
            f"evidence, and the supporting events. {ROUTED}", [ALLIANCE_ID, AS_OF],
            {"200": _json(AllianceHistory, "The history."), **_errors(400, 404, 503)},
            "alliances"),
        "/companies/{name}": _get(
            "A company's partners by stage", f"From the company index. {ROUTED}",
            [_path("name", "Canonical company name or its slug, any case.", "Nissan"), AS_OF],
            {"200": _json(CompanyView, "The company's alliances."),
             **_errors(400, 404, 503)}, "companies"),
        "/companies": _get(
            "Company type-ahead", "Companies whose name (any case) or slug starts with "
            "`q`, from the company index of every worker; best first: an exact name or slug, "
            "then more alliances, then by name.",
            [{**_query("q", "The start of a company name or slug.", {"type": "string",
                                                                     "minLength": 1},
                       "nis"), "required": True},
             _limit("Companies to return.", COMPANY_LIMIT),
             _query("scope", SCOPE["description"], SCOPE["schema"])],
            {"200": _json(CompanyMatches, "Matching companies."), **_errors(400, 503)},
            "companies"),
        "/graph": _get(
            "Alliance graph", "Companies as nodes, alliances as edges (n parties give "
            "n(n-1)/2 edges), for visualisation. With `company`: its neighbourhood, walked "
            "breadth first over the company index up to `depth` hops, at most `limit` "
            "alliances (`truncated` says the walk stopped there). Without: the edges of one "
            "page of /alliances (`limit`, `cursor`, `next_cursor`) and the nodes they touch. "
            "Filters as /alliances; with `company` they choose the alliances walked.",
            [FILTERS[0], _query("depth", "With company: hops to walk.",
                                {"type": "integer", "minimum": 1,
                                 "maximum": GRAPH_DEPTH.maximum,
                                 "default": GRAPH_DEPTH.default}),
             *FILTERS_BUT_COMPANY,
             _limit("Alliances drawn (per page without company, in all with it).",
                    GRAPH_LIMIT), CURSOR],
            {"200": _json(Graph, "Nodes and edges."), **_errors(400, 503)}, "alliances"),
        "/changes/stream": _get(
            "Change stream (Server-Sent Events)", "Every `AllianceChange` from now on (or "
            "from `Last-Event-ID`) as an SSE `change` event whose `data` is the change as "
            "JSON (the wire model of alliances.changes.v1) and whose `id` is the position "
            "after it: per partition of the change topic, the next offset (`0:12,1:5,2:0,"
            "3:7`). Reconnecting with `Last-Event-ID` resumes after that position without "
            "loss or repeat. A first `ready` event carries the starting position; `: "
            "heartbeat` comments keep quiet streams open. Any worker serves every change. A "
            "client that falls RADAR_AGGREGATOR_SSE_QUEUE events behind is disconnected.",
            [FILTERS[0], FILTERS[1],
             {"name": "Last-Event-ID", "in": "header", "required": False,
              "description": "Resume after this position (the `id` of the last event "
              "received).", "schema": {"type": "string"}, "example": "0:12,1:5,2:0,3:7"}],
            {"200": {"description": "An endless text/event-stream.",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
             **_errors(400, 503)}, "changes"),
        "/health": _get(
            "Readiness", "200 when this worker is assigned, restored and not rebalancing.",
            [], {"200": _json(Health, "Ready."), "503": _json(Health, "Not ready yet.")},
            "operations"),
        "/metrics": _get(
            "Prometheus metrics", "Radar and Faust metrics in the Prometheus text format.",
            [], {"200": {"description": "Metrics.",
                         "content": {"text/plain": {"schema": {"type": "string"}}}}},
            "operations"),
        "/openapi.json": _get(
            "This document", "The OpenAPI document of this API.", [],
            {"200": {"description": "OpenAPI 3.1 document.",
                     "content": {"application/json": {"schema": {"type": "object"}}}}},
            "operations"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Alliance Radar query API", "version": _version(),
                 "description": "The live alliance view held by the aggregator's Faust "
                 "tables. Any worker answers any query. Errors are JSON objects with an "
                 "`error` message."},
        "tags": [{"name": "alliances"}, {"name": "companies"}, {"name": "changes"},
                 {"name": "operations"}],
        "paths": paths,
        "components": {"schemas": defs["$defs"]},
    }
