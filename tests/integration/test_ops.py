"""Every service answers /metrics and /health; the query API validates its input."""

import httpx
import pytest

from services.cli.stack import SERVICES, Stack


@pytest.mark.parametrize("name", SERVICES)
def test_health_and_metrics(stack: Stack, name: str) -> None:
    base = stack.services[name].base_url
    health = httpx.get(f"{base}/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ready" and health.json()["service"] == name
    metrics = httpx.get(f"{base}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "text/plain" in metrics.headers["content-type"]
    assert f'radar_service_ready{{service="{name}"}} 1.0' in metrics.text


def test_aggregator_exposes_faust_sensor_metrics(stack: Stack) -> None:
    text = httpx.get(stack.services["aggregator"].base_url + "/metrics", timeout=5).text
    assert "radar_faust_" in text


def test_query_api_errors(stack: Stack) -> None:
    api = stack.services["aggregator"].base_url
    missing = httpx.get(f"{api}/alliances/nobody+nothing", timeout=5)
    assert missing.status_code == 404 and "nobody+nothing" in missing.json()["error"]
    bad = httpx.get(f"{api}/alliances", params={"stage": "merged"}, timeout=5)
    assert bad.status_code == 400 and "unknown stage" in bad.json()["error"]
