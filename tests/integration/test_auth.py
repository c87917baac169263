"""Who may call the HTTP APIs: with RADAR_INGESTOR_TOKEN set the ingestor's write endpoints
answer 401 without `Authorization: Bearer <token>`; with RADAR_API_TOKEN set so does the
aggregator's query API (and Faust's own pages); /metrics and /health (and /openapi.json, and
the alliance page's own files) stay open; `radar alliances` sends the token from the same
settings. Real processes on the embedded broker, with topics and an app id of their own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.cli.stack import ServiceProcess
from shared.broker import free_port
from shared.contracts import ArticleEvent, Evidence, PartnershipEvent
from tests.helpers import TopicReader, produce, valid, wait_until

RUN = uuid.uuid4().hex[:8]
WRITE_TOKEN = secrets.token_urlsafe(24)
READ_TOKEN = secrets.token_urlsafe(24)
TOPICS = {"RADAR_TOPIC_ARTICLES": f"it-auth-{RUN}.articles",
          "RADAR_TOPIC_PARTNERSHIPS": f"it-auth-{RUN}.partnerships",
          "RADAR_TOPIC_CHANGES": f"it-auth-{RUN}.changes",
          "RADAR_TOPIC_STATE": f"it-auth-{RUN}.state",
          "RADAR_INGESTOR_SEEN_TOPIC": f"it-auth-{RUN}.seen",
          "RADAR_INGESTOR_INBOX_TOPIC": f"it-auth-{RUN}.inbox",
          "RADAR_INGESTOR_GROUP_ID": f"it-auth-ingestor-{RUN}",
          "RADAR_AGGREGATOR_APP_ID": f"it-auth-aggregator-{RUN}"}
ARTICLE = {"id": f"auth-{RUN}", "published_at": "2024-06-01T00:00:00Z",
           "text": "Quorum Motors and Lattice Cells agreed to build a battery plant together, "
                   "the companies said on Monday."}


@pytest.fixture(scope="module")
def env(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    run = tmp_path_factory.mktemp("auth")
    return dict(os.environ) | TOPICS | {
        "RADAR_BOOTSTRAP_SERVERS": bootstrap, "RADAR_PROFILE": "embedded",
        "RADAR_INGESTOR_TOKEN": WRITE_TOKEN, "RADAR_API_TOKEN": READ_TOKEN,
        "RADAR_INGESTOR_PORT": str(free_port()), "RADAR_AGGREGATOR_PORT": str(free_port()),
        "RADAR_INGESTOR_FEEDS_FILE": str(run / "feeds.toml"),
        "RADAR_AGGREGATOR_DATA_DIR": str(run / "aggregator"),
        "RADAR_API_URL": "", "PYTHONUNBUFFERED": "1", "RUN_DIR": str(run)}


def _service(name: str, env: dict[str, str]) -> Iterator[ServiceProcess]:
    port = int(env[f"RADAR_{name.upper()}_PORT"])
    svc = ServiceProcess(name, port, "127.0.0.1", Path(env["RUN_DIR"]) / f"{name}.log", env)
    svc.start()
    try:
        wait_until(lambda: (svc.alive() or pytest.fail(svc.tail())) and svc.healthy(), 90,
                   0.2, f"{name} healthy")
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def ingestor(env: dict[str, str]) -> Iterator[ServiceProcess]:
    yield from _service("ingestor", env)


@pytest.fixture(scope="module")
def aggregator(env: dict[str, str]) -> Iterator[ServiceProcess]:
    yield from _service("aggregator", env)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unauthorized(svc: ServiceProcess, reason: str) -> float:
    text = httpx.get(svc.base_url + "/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "radar_http_unauthorized_total" and s.labels.get("reason") == reason)


async def test_ingestor_writes_need_the_token(ingestor: ServiceProcess, bootstrap: str) -> None:
    url = ingestor.base_url + "/articles"
    body = json.dumps(ARTICLE)
    missing = httpx.post(url, content=body, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="radar-ingestor"'
    assert missing.json()["reason"] == "unauthorized"
    for headers in (bearer(READ_TOKEN), bearer(WRITE_TOKEN[:-1]), bearer(WRITE_TOKEN + "x"),
                    {"Authorization": f"Basic {WRITE_TOKEN}"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer ünïcödé-tökén".encode()},
                    {"authorization": f"bearer  {WRITE_TOKEN}x"}):
        refused = httpx.post(url, content=body, headers=headers, timeout=10)
        assert refused.status_code == 401, headers
        assert "invalid_token" in refused.headers["WWW-Authenticate"]
    fetch = httpx.post(ingestor.base_url + "/fetch", json={"url": "http://127.0.0.1:9/x"},
                       timeout=10)
    assert fetch.status_code == 401
    # Refused before the body is read: a 5 MB body costs nothing, and is no 413.
    big = httpx.post(url, content=b"x" * 5_100_000, timeout=30)
    assert big.status_code == 401
    accepted = httpx.post(url, content=body, headers=bearer(WRITE_TOKEN), timeout=10)
    assert accepted.status_code == 202 and accepted.json()["published"] == 1
    # The scheme is case-insensitive (RFC 7235); the token itself is not.
    again = httpx.post(url, content=body, headers={"Authorization": f"bearer {WRITE_TOKEN}"},
                       timeout=10)
    assert again.status_code == 202 and again.json()["duplicate"] == 1
    for path in ("/health", "/metrics"):
        assert httpx.get(ingestor.base_url + path, timeout=5).status_code == 200, path
    assert unauthorized(ingestor, "missing") == 3
    assert unauthorized(ingestor, "wrong") == 5
    assert unauthorized(ingestor, "malformed") == 2
    async with TopicReader(bootstrap, TOPICS["RADAR_TOPIC_ARTICLES"]) as reader:
        records = await reader.wait_for(lambda rs: bool(valid(rs, ArticleEvent)),
                                        message="the authorised article")
    assert [a.article_id for a in valid(records, ArticleEvent)] == [ARTICLE["id"]]


async def test_query_api_needs_the_token_and_ops_stay_open(aggregator: ServiceProcess,
                                                           bootstrap: str,
                                                           env: dict[str, str],
                                                           radar_bin: str) -> None:
    event = PartnershipEvent(
        event_id=f"auth-{RUN}", article_id=f"auth-{RUN}", parties=["Quorum", "Lattice"],
        stage="agreed", confidence=0.9, published_at="2024-06-01T00:00:00Z",
        evidence=[Evidence(sentence="Quorum and Lattice agreed", start=0, end=9)])
    await produce(bootstrap, TOPICS["RADAR_TOPIC_PARTNERSHIPS"],
                  [(event.key(), event.to_bytes())])
    api = aggregator.base_url

    def listed() -> list[str]:
        resp = httpx.get(f"{api}/alliances", headers=bearer(READ_TOKEN), timeout=10)
        return [r["alliance_id"] for r in resp.json()["alliances"]] if resp.is_success else []

    assert wait_until(listed, 60, 0.3, "the alliance") == ["lattice+quorum"]
    for path in ("/alliances", "/alliances/lattice+quorum", "/alliances/lattice+quorum/history",
                 "/companies/Quorum", "/graph", "/table/alliances/", "/router/"):
        missing = httpx.get(api + path, timeout=10)
        assert missing.status_code == 401, path
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="radar-query-api"'
        assert httpx.get(api + path, headers=bearer(WRITE_TOKEN),
                         timeout=10).status_code == 401, path
    for path in ("/alliances/lattice+quorum", "/companies/Quorum", "/graph"):
        assert httpx.get(api + path, headers=bearer(READ_TOKEN),
                         timeout=10).status_code == 200, path
    # Faust's raw table and routing pages are off altogether.
    assert httpx.get(f"{api}/table/alliances/", headers=bearer(READ_TOKEN),
                     timeout=10).status_code == 404
    # The alliance page holds no data (its data calls carry the token): open, like /health;
    # only the page's own files are.
    for path in ("/health", "/metrics", "/openapi.json", "/", "/static/app.js"):
        assert httpx.get(api + path, timeout=5).status_code == 200, path
    for path in ("/static/../views.py", "/static/vendor", "/static/missing.js"):
        assert httpx.get(api + path, timeout=5).status_code in (401, 404), path
    assert unauthorized(aggregator, "missing") >= 7

    cli = env | {"RADAR_API_URL": api}
    shown = subprocess.run([radar_bin, "alliances", "--json"], env=cli, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert [r["alliance_id"] for r in json.loads(shown.stdout)] == ["lattice+quorum"]
    refused = subprocess.run([radar_bin, "alliances"], env=cli | {"RADAR_API_TOKEN": ""},
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "needs RADAR_API_TOKEN" in refused.stderr
