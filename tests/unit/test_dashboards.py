"""Dashboards as code: the committed JSON is what the generator makes, it validates against
Grafana's dashboard schema, and every metric it queries is in the catalogue (and back)."""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from tests.helpers import load_dashboard_generator

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
CATALOGUE = ROOT / "deploy" / "METRICS.md"
SCHEMA_SHA256 = "aada9a8b8d6aece42a470d10dc06dae5e6ce5cf0e2e754387d65594481e49c1a"
METRICS_MODULES = ("shared.metrics", "services.ingestor.metrics",
                   "services.extractor.metrics", "services.aggregator.metrics")


generator = load_dashboard_generator()
FILES = sorted((GRAFANA / "dashboards").glob("*.json"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((GRAFANA / "schema" / "dashboard.jsonschema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in FILES}


def test_regenerating_reproduces_the_committed_files() -> None:
    assert {p.name for p in FILES} == set(generator.DASHBOARDS)
    assert generator.stale_files() == [], "run: .venv/bin/python deploy/grafana/generate.py"


def test_generation_is_deterministic() -> None:
    assert generator.generate() == generator.generate()


def test_vendored_schema_is_the_recorded_copy() -> None:
    data = (GRAFANA / "schema" / "dashboard.jsonschema.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256
    assert SCHEMA_SHA256 in (GRAFANA / "schema" / "README.md").read_text()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_validates_against_grafana_schema(
        path: Path, validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(json.loads(path.read_text()))]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("mutate", [
    lambda d: d["panels"][1].__setitem__("gridPos", {"h": 8, "w": 30, "x": 0, "y": 0}),
    lambda d: d["panels"][1].__setitem__("colour", "red"),
    lambda d: d.pop("schemaVersion"),
    lambda d: d["panels"][1].__setitem__("type", ""),
], ids=["too-wide", "unknown-key", "no-schema-version", "empty-type"])
def test_schema_rejects_broken_dashboards(mutate: Any,
                                          validator: jsonschema.Draft7Validator) -> None:
    board = copy.deepcopy(_dashboards()["pipeline-health.json"])
    mutate(board)
    assert list(validator.iter_errors(board))


def test_dashboards_are_what_the_issue_asks_for() -> None:
    boards = {b["uid"]: b for b in _dashboards().values()}
    assert set(boards) == {"radar-pipeline-health", "radar-alliances"}
    health = " ".join(q.expr for q in generator.panel_queries(boards["radar-pipeline-health"]))
    for needle in ("rate(", "histogram_quantile(0.99", "radar_consumer_lag_records",
                   "radar_faust_topic_partition_end_offset", "radar_dlq_records_total",
                   "radar_ingestor_rejected_total"):
        assert needle in health
    alliance = " ".join(q.expr for q in generator.panel_queries(boards["radar-alliances"]))
    for needle in ("sum by (stage) (radar_alliances)", "increase(radar_alliance_changes_total[1h])",
                   "topk(10, sum by (company) (radar_company_alliances))"):
        assert needle in alliance


def test_panels_have_unique_ids_and_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for name, board in _dashboards().items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)) and all(refs), panel["title"]


def test_substitute_fills_grafana_variables_and_refuses_unknown_ones() -> None:
    assert generator.substitute("rate(x[$__rate_interval]) + y[${__range}]") == \
        "rate(x[1m]) + y[1h]"
    with pytest.raises(KeyError, match=r"\$__nope"):
        generator.substitute("rate(x[$__nope])")


# --------------------------------------------------------------------------- catalogue


def _catalogued() -> set[str]:
    return set(re.findall(r"`(radar_[a-z0-9_]+)`", CATALOGUE.read_text()))


def _exposed_names(registry: CollectorRegistry, prefix: str) -> set[str]:
    names = set()
    for metric in registry.collect():
        if metric.name.startswith(prefix):
            names.add(metric.name + "_total" if metric.type == "counter" else metric.name)
    return names


def _registered() -> set[str]:
    for module in METRICS_MODULES:
        importlib.import_module(module)
    return _exposed_names(REGISTRY, "radar_")


def _faust_sensor() -> set[str]:
    from faust.sensors.prometheus import FaustMetrics

    registry = CollectorRegistry()
    FaustMetrics.create(registry, "radar_faust")
    return _exposed_names(registry, "radar_faust")


def test_every_registered_metric_is_catalogued() -> None:
    missing = (_registered() | _faust_sensor()) - _catalogued()
    assert not missing, f"add to deploy/METRICS.md: {sorted(missing)}"


def test_catalogue_names_only_existing_metrics() -> None:
    stale = _catalogued() - _registered() - _faust_sensor()
    assert not stale, f"deploy/METRICS.md lists metrics no code registers: {sorted(stale)}"


def test_dashboards_query_only_catalogued_metrics() -> None:
    known = _catalogued()
    for board in _dashboards().values():
        for query in generator.panel_queries(board):
            for name in re.findall(r"\b(radar_[a-z0-9_]+)", query.expr):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                assert name in known or base in known, f"{query.panel}: {name} not catalogued"


def test_counter_and_histogram_names_follow_prometheus_conventions() -> None:
    for metric in [m for m in REGISTRY.collect() if m.name.startswith("radar_")]:
        if metric.type == "histogram":  # base units
            assert metric.name.endswith(("_seconds", "_bytes")), metric.name
        assert not metric.name.endswith("_total") or metric.type == "counter", metric.name


# --------------------------------------------------------------------------- top companies


def test_set_top_companies_exports_a_bounded_stable_top() -> None:
    from services.aggregator.metrics import COMPANY_ALLIANCES, set_top_companies

    counts = {f"Company {i:02d}": i % 7 for i in range(40)} | {"Zeta": 9, "Alpha": 9}
    top = set_top_companies(counts, limit=5)
    assert top == [("Alpha", 9), ("Zeta", 9), ("Company 06", 6), ("Company 13", 6),
                   ("Company 20", 6)]
    exported = {s.labels["company"]: s.value for s in COMPANY_ALLIANCES.collect()[0].samples}
    assert exported == dict(top)
    set_top_companies({"Solo": 1}, limit=5)
    assert [s.labels["company"] for s in COMPANY_ALLIANCES.collect()[0].samples] == ["Solo"]
    set_top_companies({})
