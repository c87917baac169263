"""Grafana dashboards as code: the source of deploy/grafana/dashboards/*.json.

Built with grafana-foundation-sdk in the flavour of the Grafana image in docker-compose.yml
(11.6.0), so the JSON is what that Grafana expects. The JSON files are committed because
Grafana provisions them from disk; `tests/unit/test_dashboards.py` fails when they drift from
this module, and `tests/integration/test_prometheus.py` runs every panel query against a real
Prometheus scraping a real stack.

    .venv/bin/python deploy/grafana/generate.py           # rewrite the JSON files
    .venv/bin/python deploy/grafana/generate.py --check   # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    timeseries,
)
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueGraphMode,
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"
SCHEMA_PATH = HERE / "schema" / "dashboard.jsonschema.json"

#: The datasource provisioned in deploy/grafana/provisioning/datasources/prometheus.yml.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
#: Scrape jobs of deploy/prometheus/prometheus.yml.
RADAR_JOBS = 'job=~"ingestor|extractor|aggregator"'
#: Grafana's built-in variables, with the values a query run outside Grafana gets.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
REFRESH = "10s"


# --------------------------------------------------------------------------- PromQL helpers


def rate(metric: str, by: str = "", window: str = "$__rate_interval") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}[{window}]))"


def quantile(q: float, histogram: str, by: str = "", scale: str = "") -> str:
    """`q` quantile of a Prometheus histogram over the rate window, optionally per label."""
    labels = f"{by}, le" if by else "le"
    expr = (f"histogram_quantile({q}, sum by ({labels}) "
            f"(rate({histogram}_bucket[$__rate_interval])))")
    return f"{expr} {scale}" if scale else expr


# --------------------------------------------------------------------------- panel helpers


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _targets(queries: tuple[Query, ...]) -> list[prometheus.Dataquery]:
    out = []
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        target = target.datasource(DATASOURCE)
        if query.legend:
            target = target.legend_format(query.legend)
        if query.instant:
            target = target.instant()
        if query.table:
            target = target.format(PromQueryFormat.TABLE)
        out.append(target)
    return out


class Layout:
    """Numbers panels in order, so ids stay stable when panels are added at the end."""

    def __init__(self) -> None:
        self.next_id = 1

    def take(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> dashboard.Row:
        return dashboard.Row(title).id(self.take())

    def timeseries(self, title: str, description: str, unit: str, *queries: Query,
                   width: int = 12, height: int = 8, stacked: bool = False,
                   bars: bool = False) -> timeseries.Panel:
        panel = (timeseries.Panel().id(self.take()).title(title).description(description)
                 .datasource(DATASOURCE).unit(unit).span(width).height(height)
                 .targets(_targets(queries)).min(0).fill_opacity(10)
                 .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                         .placement(LegendPlacement.BOTTOM).show_legend(True)
                         .calcs(["mean", "max", "lastNotNull"])))
        if stacked:
            panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
            panel = panel.fill_opacity(40)
        if bars:
            panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(60)
        return panel

    def stat(self, title: str, description: str, unit: str, query: Query,
             width: int = 6, height: int = 4) -> stat.Panel:
        return (stat.Panel().id(self.take()).title(title).description(description)
                .datasource(DATASOURCE).unit(unit).span(width).height(height)
                .graph_mode(BigValueGraphMode.AREA).targets(_targets((query,))))

    def bars(self, title: str, description: str, unit: str, query: Query,
             width: int = 12, height: int = 10) -> bargauge.Panel:
        return (bargauge.Panel().id(self.take()).title(title).description(description)
                .datasource(DATASOURCE).unit(unit).span(width).height(height).min(0)
                .display_mode(BarGaugeDisplayMode.GRADIENT)
                .orientation(VizOrientation.HORIZONTAL).targets(_targets((query,))))

    def table(self, title: str, description: str, query: Query,
              width: int = 12, height: int = 10) -> table_panel.Panel:
        return (table_panel.Panel().id(self.take()).title(title).description(description)
                .datasource(DATASOURCE).span(width).height(height)
                .targets(_targets((query,))))


def _dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description)
            .tags(["alliance-radar", *tags]).time("now-1h", "now").refresh(REFRESH)
            .timezone("browser").tooltip(DashboardCursorSync.CROSSHAIR).readonly())


# --------------------------------------------------------------------------- dashboards


def pipeline_health() -> dashboard.Dashboard:
    """Is the pipeline up, how fast does it move, how far behind is it, what does it drop."""
    lay = Layout()
    board = _dashboard(
        "radar-pipeline-health", "Alliance Radar / Pipeline health",
        "Throughput, latency, consumer lag, errors and dead letters of the ingestor, "
        "extractor and aggregator. Metric catalogue: deploy/METRICS.md.", ["pipeline"])

    board = board.with_row(lay.row("Overview"))
    board = board.with_panel(lay.stat(
        "Services scraped up", "1 per service whose /metrics Prometheus reached on the last "
        "scrape (the `up` series of each scrape job).", "short",
        Query(f"sum(up{{{RADAR_JOBS}}})", instant=True)))
    board = board.with_panel(lay.stat(
        "Articles published /s", "Articles the ingestor published to news.articles.v1.",
        "ops", Query(rate('radar_ingestor_articles_total{outcome="published"}'))))
    board = board.with_panel(lay.stat(
        "End-to-end p95", "95th percentile from article ingest to the AllianceChange it "
        "caused.", "s", Query(quantile(0.95, "radar_end_to_end_latency_seconds"))))
    board = board.with_panel(lay.stat(
        "Dead letters in range", "Records sent to a *.dlq topic during the dashboard range.",
        "short", Query("sum(increase(radar_dlq_records_total[$__range]))", instant=True)))

    board = board.with_row(lay.row("Throughput"))
    board = board.with_panel(lay.timeseries(
        "Records consumed /s", "Kafka records read, per service and input topic.", "ops",
        Query(rate("radar_messages_consumed_total", "service, topic"),
              "{{service}} ← {{topic}}")))
    board = board.with_panel(lay.timeseries(
        "Records produced /s", "Kafka records written, per service and output topic.", "ops",
        Query(rate("radar_messages_produced_total", "service, topic"),
              "{{service}} → {{topic}}")))
    board = board.with_panel(lay.timeseries(
        "Ingest by channel and outcome", "Input items per second: published or rejected, "
        "per channel (http, folder, cli).", "ops",
        Query(rate("radar_ingestor_articles_total", "channel, outcome"),
              "{{channel}} {{outcome}}")))
    board = board.with_panel(lay.timeseries(
        "Extractor articles by outcome", "events: at least one partnership event; no_events: "
        "parsed, nothing found; gated_out: never parsed (no cooperation cue).", "ops",
        Query(rate("radar_extractor_articles_total", "outcome"), "{{outcome}}"),
        stacked=True))

    board = board.with_row(lay.row("Latency"))
    board = board.with_panel(lay.timeseries(
        "End-to-end latency (ingest → AllianceChange)", "Quantiles of the time from the "
        "ingestor taking an article in to the aggregator emitting the change it caused.", "s",
        *(Query(quantile(q, "radar_end_to_end_latency_seconds"), f"p{round(q * 100)}")
          for q in (0.5, 0.95, 0.99))))
    board = board.with_panel(lay.timeseries(
        "Extraction time per article", "Quantiles of the extractor's NLP time per article "
        "(batch time divided by its articles).", "s",
        *(Query(quantile(q, "radar_extraction_seconds"), f"p{round(q * 100)}")
          for q in (0.5, 0.95, 0.99))))
    board = board.with_panel(lay.timeseries(
        "Batch processing p95 by service", "95th percentile of the time to process one "
        "consumed batch (decode, handle, produce).", "s",
        Query(quantile(0.95, "radar_batch_processing_seconds", "service"), "{{service}}")))
    board = board.with_panel(lay.timeseries(
        "Aggregator event runtime", "Faust's sensor: time an agent spends on one event "
        "(reported in ms, shown in seconds).", "s",
        *(Query(quantile(q, "radar_faust_events_runtime_ms", scale="/ 1000"),
                f"p{round(q * 100)}") for q in (0.5, 0.99))))

    board = board.with_row(lay.row("Consumer lag"))
    board = board.with_panel(lay.timeseries(
        "Consumer lag by partition", "Records behind the end of each input partition. "
        "Extractor: high watermark minus position. Aggregator: Faust's sensor, end offset "
        "minus committed offset (changelogs excluded).", "short",
        Query("max by (service, topic, partition) (radar_consumer_lag_records)",
              "{{service}} {{topic}}[{{partition}}]"),
        Query('max by (topic, partition) (radar_faust_topic_partition_end_offset'
              '{topic!~".*-changelog"}) - max by (topic, partition) '
              '(radar_faust_topic_partition_offset_commited{topic!~".*-changelog"})',
              "aggregator {{topic}}[{{partition}}]"),
        width=24))

    board = board.with_row(lay.row("Errors and dead letters"))
    board = board.with_panel(lay.timeseries(
        "Dead letters /s by reason", "Records a service could not process, sent to "
        "<input topic>.dlq, per service, topic and reason.", "ops",
        Query(rate("radar_dlq_records_total", "service, topic, reason"),
              "{{service}} {{topic}} {{reason}}"), bars=True))
    board = board.with_panel(lay.timeseries(
        "Ingest rejections /s by reason", "Input items the ingestor refused (bad JSON, "
        "missing fields, oversized bodies), per channel and reason.", "ops",
        Query(rate("radar_ingestor_rejected_total", "channel, reason"),
              "{{channel}} {{reason}}"), bars=True))
    board = board.with_panel(lay.table(
        "Dead letters in range by reason", "Totals over the dashboard range.",
        Query("sum by (service, topic, reason) (increase(radar_dlq_records_total[$__range]))",
              instant=True, table=True)))
    board = board.with_panel(lay.timeseries(
        "Aggregator send errors and redeliveries /s", "Faust producer errors, and "
        "partnership events ignored because they were already applied (redeliveries).",
        "ops",
        Query("sum(rate(radar_faust_total_error_messages_sent_total[$__rate_interval]))",
              "send errors"),
        Query(rate("radar_duplicate_events_total"), "duplicate events")))
    return board


def alliances() -> dashboard.Dashboard:
    """What the live view holds and how it moves."""
    lay = Layout()
    board = _dashboard(
        "radar-alliances", "Alliance Radar / Alliances",
        "The live alliance view: alliances by stage, stage changes by transition, the most "
        "allied companies. Metric catalogue: deploy/METRICS.md.", ["alliances"])

    board = board.with_row(lay.row("The view"))
    board = board.with_panel(lay.stat(
        "Alliances", "Alliances in the view, all stages (summed over aggregator workers).",
        "short", Query("sum(radar_alliances)")))
    board = board.with_panel(lay.stat(
        "Companies tracked", "Distinct companies in the view (summed over workers, so a "
        "company held by two workers counts twice).", "short",
        Query("sum(radar_companies_tracked)")))
    board = board.with_panel(lay.stat(
        "Changes in range", "Alliance changes emitted during the dashboard range.", "short",
        Query("sum(increase(radar_alliance_changes_total[$__range]))", instant=True)))
    board = board.with_panel(lay.stat(
        "Partnership events /s", "Events the extractor published.", "ops",
        Query(rate("radar_extractor_events_total"))))
    board = board.with_panel(lay.timeseries(
        "Alliances by stage", "How many alliances are at each stage over time.", "short",
        Query("sum by (stage) (radar_alliances)", "{{stage}}"), width=24, stacked=True))

    board = board.with_row(lay.row("Movement"))
    board = board.with_panel(lay.timeseries(
        "Changes per hour by transition", "Alliance changes in the hour before each point, "
        "per transition (`new` = an alliance appearing).", "short",
        Query("sum by (from_stage, to_stage) (increase(radar_alliance_changes_total[1h]))",
              "{{from_stage}} → {{to_stage}}"), bars=True))
    board = board.with_panel(lay.timeseries(
        "Partnership events by stage /s", "Events extracted from the news, by the stage "
        "each reports.", "ops",
        Query(rate("radar_extractor_events_total", "stage"), "{{stage}}"), stacked=True))

    board = board.with_row(lay.row("Companies"))
    board = board.with_panel(lay.bars(
        "Most allied companies", "Top 10 companies by the number of alliances they are "
        "party to (each worker exports its top 20).", "short",
        Query("topk(10, sum by (company) (radar_company_alliances))", "{{company}}",
              instant=True)))
    board = board.with_panel(lay.table(
        "Changes in range by transition", "Totals over the dashboard range.",
        Query("sum by (from_stage, to_stage) "
              "(increase(radar_alliance_changes_total[$__range]))", instant=True, table=True)))

    board = board.with_row(lay.row("Webhooks and change stream"))
    board = board.with_panel(lay.timeseries(
        "Webhook deliveries /s by subscription", "Outcomes per subscription: delivered, "
        "failed_attempt (each failed POST, retried with backoff), dead_lettered (after the "
        "last attempt, on alliances.changes.v1.dlq), dropped (subscription removed).", "ops",
        Query(rate("radar_webhook_deliveries_total", "subscription, result"),
              "{{subscription}} {{result}}")))
    board = board.with_panel(lay.timeseries(
        "Webhook delivery time p95 by subscription", "One POST to its answer.", "s",
        Query(quantile(0.95, "radar_webhook_delivery_seconds", "subscription"),
              "{{subscription}}")))
    board = board.with_panel(lay.table(
        "Webhook dead letters in range", "Changes given up on per subscription during the "
        "dashboard range.",
        Query('sum by (subscription) (increase(radar_webhook_deliveries_total{result='
              '"dead_lettered"}[$__range]))', instant=True, table=True)))
    board = board.with_panel(lay.timeseries(
        "Change-stream clients and events", "SSE clients connected (all workers) and change "
        "events sent to them per second; slow clients disconnected per second.", "short",
        Query("sum(radar_sse_clients)", "clients"),
        Query(rate("radar_sse_events_total"), "events/s"),
        Query(rate("radar_sse_disconnects_total", "reason"), "left: {{reason}}/s")))
    return board


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "pipeline-health.json": pipeline_health,
    "alliances.json": alliances,
}


# --------------------------------------------------------------------------- output


def render(board: dashboard.Dashboard) -> str:
    """Stable JSON: the SDK's key order, 2-space indent, trailing newline."""
    return json.dumps(board.build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def stale_files(out_dir: Path = DASHBOARDS_DIR) -> list[str]:
    """Dashboard files missing or different from what this module generates."""
    return [name for name, text in generate().items()
            if not (out_dir / name).is_file() or (out_dir / name).read_text() != text]


def write(out_dir: Path = DASHBOARDS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in generate().items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool


def panel_queries(board: dict[str, Any]) -> Iterator[PanelQuery]:
    """Every Prometheus target of every panel (rows included) of a dashboard JSON."""
    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    for panel in walk(board.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield PanelQuery(board.get("title", ""), panel.get("title", ""),
                                 target.get("refId", ""), target["expr"],
                                 bool(target.get("instant")))


_VARIABLE = re.compile(r"\$(__[a-z_]+)|\$\{(__[a-z_]+)\}")


def substitute(expr: str, values: dict[str, str] = GRAFANA_VARIABLES) -> str:
    """Replace Grafana's built-in variables by fixed values; an unknown one is an error."""
    def one(match: re.Match[str]) -> str:
        name = "$" + (match.group(1) or match.group(2))
        if name not in values:
            raise KeyError(f"no value for Grafana variable {name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(one, expr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed JSON differs from the generated")
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR)
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        for name in stale:
            print(f"stale: {args.out / name} (run deploy/grafana/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
