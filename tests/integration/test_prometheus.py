"""A real Prometheus scrapes a real stack; every dashboard panel's PromQL must return data.

The stack (its own embedded broker and three service processes on free ports) gets the demo
articles over HTTP plus records that must be refused or dead-lettered. Prometheus (Debian's
package; `make test` installs it when missing) runs on 127.0.0.1 with deploy/prometheus's
config and alert rules, pointed at the stack and scraping every second. Then each target of
the committed dashboards runs through Prometheus' HTTP API. promtool checks the deploy
config, the alert rules, and that every dashboard expression parses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.cli.stack import SERVICES, Stack
from shared.broker import die_with_parent, free_port
from shared.settings import TopicSettings
from tests.helpers import load_dashboard_generator, partnership, produce, wait_until
from tests.integration.conftest import WEBHOOK_TEST_ENV

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DEMO = ROOT / "services" / "cli" / "samples" / "demo_articles.jsonl"
INSTALL_HINT = ("install Debian's package: apt-get update && apt-get install -y "
                "--no-install-recommends prometheus (`make test` does this when it is missing)")


generator = load_dashboard_generator()
QUERIES = [q for path in sorted(DASHBOARDS.glob("*.json"))
           for q in generator.panel_queries(json.loads(path.read_text()))]


def _binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` is not on PATH: {INSTALL_HINT}", pytrace=False)
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_binary("promtool"), *args], capture_output=True, text=True,
                          timeout=60)


# --------------------------------------------------------------------------- promtool


def test_promtool_accepts_deploy_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, "prometheus.yml does not load alerts.yml"


def test_promtool_accepts_alert_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in yaml.safe_load(ALERT_RULES.read_text())["groups"]
              for r in g["rules"]}
    assert {"RadarServiceDown", "RadarConsumerLagGrowing", "RadarDeadLetters",
            "RadarNoArticlesIngested"} <= alerts


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    assert len(QUERIES) >= 20, "the dashboards lost their panels"
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": generator.substitute(q.expr)}
        for i, q in enumerate(QUERIES)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    """The parse check above can fail: a broken expression is caught."""
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:broken", "expr": "sum by (le (rate(x[1m]))"}]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


# --------------------------------------------------------------------------- live Prometheus


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])


def scrape_config(ports: dict[str, int]) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, pointed at local ports and sped up to 1 s."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERT_RULES)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) >= set(SERVICES), f"deploy config lacks jobs: {set(SERVICES) - set(jobs)}"
    for name, job in jobs.items():
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{ports[name]}"]
    return config


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("prom-stack")
    stack = Stack(run_dir=run_dir, broker_port=free_port(),
                  ports={n: free_port() for n in SERVICES},
                  extra_env={"RADAR_PROFILE": "embedded", "RADAR_AGGREGATOR_SSE_HEARTBEAT_S": "1",
                             **WEBHOOK_TEST_ENV})
    with stack:
        stack.wait_healthy(timeout=120)
        yield stack


@pytest.fixture(scope="module")
def prometheus(live_stack: Stack, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Prometheus]:
    binary = _binary("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(
        {n: s.port for n, s in live_stack.services.items()})))
    port = free_port()
    log_path = work / "prometheus.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={work / 'data'}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:
        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited:\n{prom.tail()}"
            try:
                return httpx.get(f"{prom.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, 0.1, "Prometheus ready")
        # Counters must be scraped before the traffic, or rate() sees no increase.
        wait_until(lambda: len([s for s in prom.query('up == 1')]) == len(SERVICES),
                   30, 0.2, "every service scraped up")
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


#: Panels whose figures may rightly be zero in a healthy run (caught-up lag, no errors).
MAY_BE_ZERO = {"Consumer lag by partition", "Aggregator send errors and redeliveries /s"}


def has_data(result: list[dict[str, Any]], zero_ok: bool) -> bool:
    values = [float(series["value"][1]) for series in result]
    return any(math.isfinite(v) and (zero_ok or v > 0) for v in values)


class Subscribers:
    """The push side, for the webhook and change-stream panels: a webhook receiver on
    127.0.0.1 subscribed twice to one company (one URL answers 204, one 500: delivered and
    dead-lettered), and a change-stream client connected throughout."""

    COMPANY = ["Promtest Alpha", "Promtest Beta"]

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        outcome = {"/ok": 204, "/fail": 500}

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(outcome.get(self.path, 404))
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
        self.threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                        threading.Thread(target=self.listen, daemon=True)]

    def __enter__(self) -> Subscribers:
        env = dict(os.environ) | WEBHOOK_TEST_ENV | {
            "RADAR_BOOTSTRAP_SERVERS": self.stack.bootstrap, "RADAR_PROFILE": "embedded"}
        for thread in self.threads:
            thread.start()
        for path in ("/ok", "/fail"):
            url = f"http://127.0.0.1:{self.server.server_port}{path}"
            radar = shutil.which("radar", path=str(Path(sys.executable).parent))
            assert radar, "the radar console script is not installed"
            done = subprocess.run([radar, "webhooks", "add", url, "--company",
                                   self.COMPANY[0]], env=env, timeout=60,
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()

    def listen(self) -> None:
        url = self.stack.services["aggregator"].base_url + "/changes/stream"
        with contextlib.suppress(httpx.HTTPError), \
                httpx.stream("GET", url, timeout=httpx.Timeout(10, read=30)) as response:
            for _ in response.iter_lines():  # a heartbeat every second wakes this
                if self.stop.is_set():
                    return

    def changes(self, stage: str) -> list[tuple[bytes, bytes]]:
        """A partnership event that moves the subscribed company's alliance to `stage`."""
        event = partnership(f"prom-{stage}", self.COMPANY, stage,
                            datetime.now(UTC) - timedelta(days=1))
        return [(event.key(), event.to_bytes())]


def send_round(stack: Stack, articles: bytes, subscribed: list[tuple[bytes, bytes]] = ()
               ) -> None:
    """Good articles over HTTP, one refused item, one bad record on each consumed topic,
    and a change for the webhook subscriptions."""
    ingest = stack.services["ingestor"].base_url + "/articles"
    response = httpx.post(ingest, content=articles, timeout=30)
    assert response.status_code == 202, response.text
    assert httpx.post(ingest, content=b'{"title": "no text"}', timeout=10).status_code == 400
    topics = TopicSettings()
    asyncio.run(produce(stack.bootstrap, topics.articles, [(b"bad", b"not json")]))
    asyncio.run(produce(stack.bootstrap, topics.partnerships,
                        [(b"bad", b'{"schema_version": 1}'), *subscribed]))


@pytest.fixture(scope="module")
def subscribers(live_stack: Stack) -> Iterator[Subscribers]:
    with Subscribers(live_stack) as subs:
        yield subs


@pytest.fixture(scope="module")
def results(live_stack: Stack, prometheus: Prometheus, subscribers: Subscribers
            ) -> dict[str, list[dict[str, Any]]]:
    """Two rounds of traffic, then every panel query until it has data (or 45 s).

    A labelled counter is born at its first increment, so Prometheus' first sample of it
    already holds that increment and rate() over it is 0; the second round moves counters
    whose series Prometheus has already seen, as in any running deployment.
    """
    demo = DEMO.read_bytes().splitlines(keepends=True)
    half = len(demo) // 2
    send_round(live_stack, b"".join(demo[:half]), subscribers.changes("talks"))
    born = ['radar_dlq_records_total{service="extractor"}',
            'radar_dlq_records_total{service="aggregator"}', "radar_ingestor_rejected_total",
            "radar_batch_processing_seconds_count", "radar_alliance_changes_total",
            'radar_ingestor_articles_total{outcome="published"}',
            'radar_webhook_deliveries_total{result="delivered"}',
            'radar_webhook_deliveries_total{result="dead_lettered"}']
    wait_until(lambda: all(prometheus.query(expr) for expr in born), 30, 0.5,
               "round-one series scraped")
    send_round(live_stack, b"".join(demo[half:]), subscribers.changes("agreed"))

    wanted = {generator.substitute(q.expr): q.panel in MAY_BE_ZERO for q in QUERIES}
    latest: dict[str, list[dict[str, Any]]] = {}

    def all_have_data() -> bool:
        for expr, zero_ok in wanted.items():
            if not has_data(latest.get(expr, []), zero_ok):
                latest[expr] = prometheus.query(expr)
        return all(has_data(latest[e], zero_ok) for e, zero_ok in wanted.items())

    # On time-out the per-panel tests below say which queries stayed empty.
    with contextlib.suppress(AssertionError):
        wait_until(all_have_data, 45, 0.5, "data for every dashboard query")
    return latest


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.dashboard}:{q.panel}:{q.ref_id}")
def test_dashboard_query_returns_data(results: dict[str, list[dict[str, Any]]],
                                      query: Any) -> None:
    expr = generator.substitute(query.expr)
    zero_ok = query.panel in MAY_BE_ZERO
    assert has_data(results[expr], zero_ok), (
        f"panel {query.panel!r} ({query.dashboard}) returned no "
        f"{'finite' if zero_ok else 'positive'} sample: {expr}\nresult: {results[expr]}")


def test_dead_letter_alert_fires_and_services_are_not_down(
        results: dict[str, list[dict[str, Any]]], prometheus: Prometheus) -> None:
    def firing_once_dead_letters_fire() -> set[str]:
        names = {a["labels"]["alertname"] for a in prometheus.alerts()
                 if a["state"] == "firing"}
        return names if "RadarDeadLetters" in names else set()

    names = wait_until(firing_once_dead_letters_fire, 30, 0.5, "RadarDeadLetters firing")
    assert "RadarServiceDown" not in names and "RadarNoArticlesIngested" not in names
    services = {a["labels"].get("service") for a in prometheus.alerts()
                if a["labels"]["alertname"] == "RadarDeadLetters"}
    assert {"extractor", "aggregator"} <= services
