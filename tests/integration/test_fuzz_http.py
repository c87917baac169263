"""Hostile input at the HTTP doors, against real processes.

- The query API: schemathesis generates valid and invalid parameters for every operation of
  the aggregator's own OpenAPI document; no answer is a 500 (503 only while rebalancing).
- The ingestor (with a write token, own topics): request bodies of every kind with good
  articles among junk, random headers (Authorization, Content-Type, Content-Encoding...),
  raw bytes instead of HTTP, and /fetch bodies. Never a 5xx; every rejected item counted in
  radar_ingestor_rejected_total with a reason; the good items of a batch published.
`make test` runs a short deterministic profile, `make fuzz` 10,000 cases per door.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode

from services.aggregator.openapi import openapi_document
from services.cli.stack import ServiceProcess, Stack
from shared.broker import free_port
from tests.fuzzing import door, hypothesis_profile
from tests.helpers import wait_until

RUN = uuid.uuid4().hex[:8]
TOKEN = "fuzz-write-token-" + RUN + RUN
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The change stream never ends (tests/integration/test_change_stream.py covers its input).
OPERATIONS = [op for r in schemathesis.openapi.from_dict(openapi_document())
              .get_all_operations() if (op := r.ok()).path != "/changes/stream"]
COUNTER = itertools.count()


def total(svc: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(svc.base_url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and labels.items() <= s.labels.items())


# ------------------------------------------------------------------ the query API


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{o.method.upper()} {o.path}"
                                                       for o in OPERATIONS])
def test_query_api_never_answers_500(stack: Stack, operation) -> None:
    api = stack.services["aggregator"].base_url
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))
    statuses: dict[int, int] = {}
    with door("query API (schemathesis, per operation)") as report:
        # 2,000 per operation in `make fuzz`: 10,000 over the five query endpoints (the
        # operations without parameters have one case to generate).
        @hypothesis_profile(60, full=2000)
        @given(cases)
        def call(case) -> None:
            response = case.call(base_url=api, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500 or response.status_code == 503, (
                case.as_curl_command(), response.status_code, response.text[:500])
            if operation.path not in ("/metrics",) and response.status_code != 404:
                content_type = response.headers.get("content-type", [""])
                assert content_type[0].startswith("application/json"), content_type
            report.cases += 1
            report.rejected += response.status_code == 400

        call()
    assert stack.services["aggregator"].healthy()
    print(f"{operation.method.upper()} {operation.path}: {statuses}")


# ------------------------------------------------------------------ the ingestor


@pytest.fixture(scope="module")
def ingestor(bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ServiceProcess]:
    run = tmp_path_factory.mktemp("fuzz-http")
    env = dict(os.environ) | {
        "RADAR_BOOTSTRAP_SERVERS": bootstrap, "RADAR_PROFILE": "embedded",
        "RADAR_TOPIC_ARTICLES": f"it-fuzz-{RUN}.articles",
        "RADAR_INGESTOR_SEEN_TOPIC": f"it-fuzz-{RUN}.seen",
        "RADAR_INGESTOR_INBOX_TOPIC": f"it-fuzz-{RUN}.inbox",
        "RADAR_INGESTOR_GROUP_ID": f"it-fuzz-{RUN}", "RADAR_INGESTOR_TOKEN": TOKEN,
        "RADAR_INGESTOR_PORT": str(free_port()), "RADAR_INGESTOR_MAX_BODY_BYTES": "200000",
        "RADAR_INGESTOR_FEEDS_FILE": str(run / "feeds.toml"),
        "RADAR_INGESTOR_FETCH_TIMEOUT_S": "2", "RADAR_LOG_LEVEL": "WARNING"}
    svc = ServiceProcess("ingestor", int(env["RADAR_INGESTOR_PORT"]), "127.0.0.1",
                         Path(run) / "ingestor.log", env)
    svc.start()
    try:
        wait_until(lambda: (svc.alive() or pytest.fail(svc.tail())) and svc.healthy(), 60,
                   0.1, "fuzz ingestor ready")
        yield svc
    finally:
        svc.stop()


def good_article() -> dict:
    n = next(COUNTER)
    return {"id": f"hf-{RUN}-{n}", "published_at": "2024-06-01T00:00:00Z",
            "text": f"Hostile{n} Industries and Probe{n} Labs signed an agreement {n} to "
                    f"build sensors together, the companies said."}


json_junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                         | st.text(max_size=40),
                         lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.sampled_from(["id", "text", "title", "url",
                                                            "published_at", "source", "x"]),
                                           inner, max_size=5), max_leaves=10)
lines = st.one_of(st.text(max_size=200).map(lambda s: " ".join(s.splitlines())),
                  json_junk.map(lambda v: json.dumps(v, allow_nan=True)),
                  st.sampled_from(['{"id": "x", "text": ', "<rss><channel>", "[1,2",
                                   '{"text": "' + "w" * 1500 + '"}',
                                   '<!DOCTYPE x [<!ENTITY a "b">]><rss>&a;</rss>',
                                   "<html><body>" + "<div>" * 3000, "\x00\x01\x02"]))
bodies = st.one_of(st.binary(max_size=3000),
                   st.lists(lines, max_size=8),
                   st.sampled_from(["rss", "atom", "html", "array"]).flatmap(
                       lambda kind: st.lists(lines, max_size=4).map(lambda ls: (kind, ls))))


def render(body, good: dict) -> bytes:
    """A body with one good article in it (where the format allows one)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, list):
        return "\n".join([*body, json.dumps(good)]).encode()
    kind, junk = body
    text = " ".join(junk).replace("<", "&lt;").replace("&", "&amp;")
    if kind == "array":
        return json.dumps([*junk, good]).encode()
    if kind == "rss":
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                f"<item><title>junk</title><description>{text}</description></item>"
                f"<item><guid>{good['id']}</guid><description>{good['text']}</description>"
                f"</item></channel></rss>").encode()
    if kind == "atom":
        return (f'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry>'
                f"<id>{good['id']}</id><title>x</title><summary>{good['text']}</summary>"
                f"</entry><entry><summary>{text}</summary></entry></feed>").encode()
    return (f"<html><body><nav>{text}</nav><article><p>{good['text']} {good['text']}</p>"
            f"</article></body></html>").encode()


def test_ingestor_bodies(ingestor: ServiceProcess) -> None:
    url = ingestor.base_url + "/articles"
    before = total(ingestor, "radar_ingestor_rejected_total", channel="http")
    reported = 0
    with door("HTTP POST /articles bodies") as report:
        @hypothesis_profile(150)
        @given(bodies, st.sampled_from(["", "?source=x", "?source=%FF%FE", "?source=" + "s"
                                         * 500, "?a=1&a=2", "?source=%00"]))
        def post(body, query: str) -> None:
            nonlocal reported
            good = good_article()
            data = render(body, good)
            resp = httpx.post(url + query, content=data, headers=AUTH, timeout=60)
            assert resp.status_code in (202, 400, 413), (resp.status_code, resp.text[:300])
            answer = resp.json()
            reported += answer.get("rejected", 0) + (1 if "reason" in answer and
                                                     "items" not in answer else 0)
            if not isinstance(body, bytes) and resp.status_code != 413:
                published = [i for i in answer["items"] if i.get("article_id") == good["id"]]
                if isinstance(body, list) or body[0] == "array":
                    assert published and published[0]["status"] == "published", answer
            report.cases += 1

        post()
        report.rejected += reported
    counted = total(ingestor, "radar_ingestor_rejected_total", channel="http") - before
    assert counted == reported, (counted, reported)
    assert ingestor.alive() and ingestor.healthy()


header_names = st.sampled_from(["Authorization", "Content-Type", "Content-Encoding",
                                "Accept", "Accept-Encoding", "X-Forwarded-For", "Expect",
                                "Cookie", "X-Radar-Routed", "Host", "Origin"])
# What an HTTP client can send (h11 refuses surrounding blanks; raw bytes are fuzzed below).
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                      blacklist_characters="\x7f"), max_size=80).map(
    lambda v: v.strip(" \t"))


def test_ingestor_headers(ingestor: ServiceProcess) -> None:
    url = ingestor.base_url + "/articles"
    with door("HTTP headers (ingestor)") as report:
        @hypothesis_profile(150)
        @given(st.dictionaries(header_names, header_values, max_size=4),
               st.booleans(), st.sampled_from(["", "gzip", "deflate", "br", "x-junk"]))
        def post(headers: dict[str, str], authorised: bool, encoding: str) -> None:
            body = json.dumps(good_article()).encode()
            headers = {k: v.encode("latin-1") for k, v in headers.items()
                       if k.lower() not in ("host",)}
            if authorised:
                headers["Authorization"] = AUTH["Authorization"].encode()
            if encoding:
                headers["Content-Encoding"] = encoding.encode()
                if encoding == "gzip" and authorised:
                    body = gzip.compress(body)
            resp = httpx.post(url, content=body, headers=headers, timeout=30)
            assert resp.status_code < 500, (headers, resp.status_code, resp.text[:300])
            if not authorised and "Authorization" not in headers:
                # 401, or 400/417 when the request is malformed before it is authorised
                assert resp.status_code in (400, 401, 417), resp.status_code
            report.cases += 1
            report.rejected += resp.status_code >= 400

        post()
    assert ingestor.alive() and ingestor.healthy()


def test_ingestor_raw_bytes_instead_of_http(ingestor: ServiceProcess) -> None:
    prefixes = [b"", b"POST /articles HTTP/1.1\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\n",
                b"POST /articles HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                b"POST /articles HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    with door("raw bytes on the ingestor's HTTP port") as report:
        @hypothesis_profile(150)
        @given(st.sampled_from(prefixes), st.binary(max_size=600))
        def send(prefix: bytes, noise: bytes) -> None:
            with socket.create_connection(("127.0.0.1", ingestor.port), timeout=5) as sock:
                sock.sendall(prefix + noise + b"\r\n\r\n")
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                try:
                    while chunk := sock.recv(65536):
                        answer += chunk
                except (TimeoutError, ConnectionResetError):
                    pass
            assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
            report.cases += 1

        send()
    assert ingestor.alive() and ingestor.healthy()


def test_ingestor_fetch_bodies(ingestor: ServiceProcess) -> None:
    # Only addresses on this machine, and schemes that are refused: no traffic leaves it.
    urls = st.one_of(st.sampled_from(["http://127.0.0.1:9/x", "https://127.0.0.1:9/",
                                      "file:///etc/passwd", "gopher://127.0.0.1/",
                                      "http://[::1]:9/", "http://0.0.0.0:9/", "http://",
                                      "javascript:alert(1)", "http://127.0.0.1:99999/",
                                      "http://user:pw@127.0.0.1:9/", "//127.0.0.1:9/x"]),
                     st.text(max_size=60).filter(lambda u: "://" not in u and
                                                 not u.startswith("//")))
    with door("HTTP POST /fetch bodies") as report:
        @hypothesis_profile(100)
        @given(st.one_of(st.fixed_dictionaries({"url": urls}, optional={"source": json_junk}),
                         json_junk, st.binary(max_size=200)))
        def fetch(payload) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            resp = httpx.post(ingestor.base_url + "/fetch", content=data, headers=AUTH,
                              timeout=30)
            assert resp.status_code in (202, 400, 502), (payload, resp.status_code, resp.text)
            assert resp.json().get("reason") or resp.status_code == 202
            report.cases += 1
            report.rejected += resp.status_code >= 400

        fetch()
    assert ingestor.alive() and ingestor.healthy()


def test_compressed_bomb_is_refused(ingestor: ServiceProcess) -> None:
    """50 MB of zeros in 50 kB of gzip, over a 200 kB body limit: 413, and no 50 MB read."""
    bomb = gzip.compress(b"\0" * 50_000_000)
    resp = httpx.post(ingestor.base_url + "/articles", content=bomb, timeout=60,
                      headers=AUTH | {"Content-Encoding": "gzip"})
    assert resp.status_code == 413
    assert ingestor.alive() and ingestor.healthy()


def test_odd_expect_headers_get_417_not_500(ingestor: ServiceProcess) -> None:
    """Regression (fuzzing): aiohttp's default Expect handler echoed a non-UTF-8 value into
    its 417 answer and failed with a 500."""
    url = ingestor.base_url + "/articles"
    for path in ("/articles", "/health", "/metrics"):
        odd = httpx.post(ingestor.base_url + path, content=b"{}",
                         headers=AUTH | {"Expect": b"\x80\xff"}, timeout=10)
        assert odd.status_code == 417, (path, odd.status_code)
    body = json.dumps(good_article()).encode()
    resp = httpx.post(url, content=body, headers=AUTH | {"Expect": "100-continue"}, timeout=10)
    assert resp.status_code == 202
    # Regression (fuzzing): a body its Content-Encoding cannot decode was a 500.
    for encoding in ("deflate", "gzip"):
        bad = httpx.post(url, content=body, headers=AUTH | {"Content-Encoding": encoding},
                         timeout=10)
        assert bad.status_code == 400 and bad.json()["reason"] == "bad_encoding", bad.text
