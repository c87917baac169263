"""The ingestor as a real process on the embedded broker, fed by feeds and pages served on
127.0.0.1: dedup that survives a restart, feed polling (growth, 304, errors, XML bomb),
page fetching (boilerplate, redirect to a private address), the Kafka inbox and its DLQ,
`radar ingest` / `radar feeds`, and HTTP fuzzing.

The ingestor under test has its own topics (isolated from the session stack) and allows
loopback fetches through RADAR_INGESTOR_FETCH_ALLOW_NETWORKS=127.0.0.0/8, as a test must.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from services.cli.stack import ServiceProcess
from shared.broker import free_port
from shared.contracts import ArticleEvent, DeadLetter, RawDocument
from tests.helpers import (
    TopicReader,
    alive_and_healthy,
    async_wait_until,
    produce,
    running_ingestor,
    valid,
    wait_until,
)
from tests.unit.test_ingest_fetch import LocalSite, redirect

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"
RUN = uuid.uuid4().hex[:8]
TOPICS = {"RADAR_TOPIC_ARTICLES": f"it-ingest-{RUN}.articles",
          "RADAR_INGESTOR_SEEN_TOPIC": f"it-ingest-{RUN}.seen",
          "RADAR_INGESTOR_INBOX_TOPIC": f"it-ingest-{RUN}.inbox",
          "RADAR_INGESTOR_GROUP_ID": f"it-ingest-{RUN}"}
ARTICLES = TOPICS["RADAR_TOPIC_ARTICLES"]
INBOX = TOPICS["RADAR_INGESTOR_INBOX_TOPIC"]
STORY = (
    "OSLO, May 21 (Radar Wire) - Northwind Energy ASA and Solvane Hydrogen AB agreed on "
    "Tuesday to build a green hydrogen plant together in northern Norway, the companies said "
    "in a joint statement. The partners will share the cost of the first 200 megawatt "
    "electrolyser and plan to sell the hydrogen to steel makers and shipping companies along "
    "the coast. Construction is due to start next year, pending permits, and the plant "
    "should produce its first hydrogen in 2027, the statement said.")
SYNDICATED = STORY.replace("(Radar Wire)", "(Example Daily)") + \
    " Example Daily is a unit of Example Media."
PAGE = """<!DOCTYPE html><html><head><title>{title}</title></head><body>
<nav><a href="/">Home</a> <a href="/subscribe">Subscribe</a></nav><article><h1>{title}</h1>
<p>{body}</p></article><footer>&copy; 2024 Example. All rights reserved.</footer></body></html>
"""
GERMAN = ("Volkswagen und Ford haben am Donnerstag eine Vereinbarung über den gemeinsamen Bau "
          "von Elektrotransportern unterzeichnet, teilten die Unternehmen mit.")


@pytest.fixture(scope="module")
def env(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    run = tmp_path_factory.mktemp("ingest")
    return dict(os.environ) | TOPICS | {
        "RADAR_BOOTSTRAP_SERVERS": bootstrap, "RADAR_PROFILE": "embedded",
        "RADAR_INGESTOR_HOST": "127.0.0.1", "RADAR_INGESTOR_PORT": str(free_port()),
        "RADAR_INGESTOR_FEEDS_FILE": str(run / "feeds.toml"),
        "RADAR_INGESTOR_FEED_INTERVAL_S": "0.3", "RADAR_INGESTOR_FEED_MAX_BACKOFF_S": "1",
        "RADAR_INGESTOR_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
        "RADAR_INGESTOR_FETCH_TIMEOUT_S": "3", "RADAR_INGESTOR_MAX_BODY_BYTES": "200000",
        "RADAR_INGESTOR_WATCH_DIR": str(run / "drop"), "RADAR_INGESTOR_WATCH_INTERVAL_S": "0.2",
        "PYTHONUNBUFFERED": "1", "RADAR_LOG_LEVEL": "INFO", "RUN_DIR": str(run)}


@pytest.fixture(scope="module")
def ingestor(env: dict[str, str]) -> Iterator[ServiceProcess]:
    with running_ingestor(env) as svc:
        yield svc


@pytest.fixture
async def site():
    async with LocalSite() as s:
        yield s


def metric(svc: ServiceProcess, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    text = httpx.get(svc.base_url + "/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def post(svc: ServiceProcess, body: object, path: str = "/articles") -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(svc.base_url + path, content=content, timeout=30)


def ids(records: list) -> list[str]:
    return [a.article_id for a in valid(records, ArticleEvent)]


def statuses(resp: httpx.Response) -> list[str]:
    return [item["status"] for item in resp.json()["items"]]


# ------------------------------------------------------------------ dedup and restart


async def test_duplicates_stay_duplicates_after_a_restart(ingestor: ServiceProcess,
                                                          bootstrap: str) -> None:
    story = {"id": f"restart-{RUN}", "text": STORY, "published_at": "2024-05-21T08:00:00Z"}
    copy = {"id": f"copy-{RUN}", "text": SYNDICATED, "title": "Hydrogen pact"}
    assert statuses(post(ingestor, story)) == ["published"]
    assert statuses(post(ingestor, story | {"id": f"other-{RUN}"})) == ["duplicate"]
    first_copy = post(ingestor, copy).json()["items"][0]
    assert first_copy["status"] == "near_duplicate"
    assert first_copy["duplicate_of"] == story["id"] and first_copy["similarity"] >= 0.8

    ingestor.kill(signal.SIGKILL)  # no clean shutdown: what is acked is all there is
    ingestor.start()
    wait_until(lambda: alive_and_healthy(ingestor), 60, 0.1, "ingestor ready again")
    assert metric(ingestor, "radar_ingestor_seen_replayed_total", result="applied") >= 1
    again = post(ingestor, story).json()
    assert (again["published"], again["duplicate"]) == (0, 1)
    assert statuses(post(ingestor, copy)) == ["near_duplicate"]
    assert metric(ingestor, "radar_ingestor_articles_total", channel="http",
                  outcome="duplicate") == 1
    async with TopicReader(bootstrap, ARTICLES) as reader:
        await reader.wait_for(lambda rs: story["id"] in ids(rs), message="the story")
        await reader.poll()
    assert ids(reader.records).count(story["id"]) == 1
    assert not {copy["id"], f"other-{RUN}"} & set(ids(reader.records))


def test_other_languages_are_skipped_and_counted(ingestor: ServiceProcess) -> None:
    resp = post(ingestor, {"id": f"de-{RUN}", "text": GERMAN})
    assert resp.status_code == 202
    assert resp.json()["items"][0].items() >= {"status": "non_english", "language": "de"}.items()
    assert metric(ingestor, "radar_ingestor_articles_total", outcome="non_english") >= 1


# ------------------------------------------------------------------ feeds


def rss(*items: tuple[str, str]) -> str:
    body = "".join(f"<item><title>{guid}</title><guid>{guid}</guid><description>{text}"
                   f"</description></item>" for guid, text in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test Wire {RUN}</title>' \
           f"{body}</channel></rss>"


def feed_item(n: int) -> tuple[str, str]:
    return (f"wire-{RUN}-{n}", f"Company{n} Holdings and Partner{n} Systems signed agreement "
                               f"number {n} to develop batteries together, they said.")


def feeds_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.feeds", "feeds", *args],
                          env=env, capture_output=True, text=True, timeout=60)


async def test_feeds_polled_end_to_end(ingestor: ServiceProcess, env: dict[str, str],
                                       bootstrap: str, site: LocalSite) -> None:
    growing = {"items": [feed_item(1)], "version": 1}

    async def wire(request: web.Request) -> web.Response:  # honours ETag: 304 when unchanged
        etag = f'"v{growing["version"]}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        return web.Response(text=rss(*growing["items"]), content_type="application/rss+xml",
                            headers={"ETag": etag})

    answers = itertools.chain([500, 502], itertools.repeat(200))

    async def flaky(_: web.Request) -> web.Response:
        status = next(answers)
        return web.Response(status=status, text=rss(feed_item(100)) if status == 200 else "")

    site.route("/wire.rss", wire)
    site.route("/flaky.rss", flaky)
    site.serve("/bomb.rss", (DATA / "bomb.xml").read_bytes())
    loop = asyncio.get_running_loop()  # CLI calls in a thread: the site must keep answering
    for name, path in (("wire", "/wire.rss"), ("flaky", "/flaky.rss"), ("bomb", "/bomb.rss")):
        done = await loop.run_in_executor(None, lambda n=name, p=path: feeds_cli(
            env, "add", site.url(p), "--name", f"{n}-{RUN}", "--interval", "0.3"))
        assert done.returncode == 0, done.stderr
    listed = json.loads((await loop.run_in_executor(None, feeds_cli, env, "list",
                                                    "--json")).stdout)
    assert [f["name"] for f in listed] == [f"wire-{RUN}", f"flaky-{RUN}", f"bomb-{RUN}"]

    async with TopicReader(bootstrap, ARTICLES) as reader:
        first, hundred = "guid-" + _h(feed_item(1)[0]), "guid-" + _h(feed_item(100)[0])
        await reader.wait_for(lambda rs: {first, hundred} <= set(ids(rs)), 30,
                              message="first items of wire and flaky")
        await async_wait_until(lambda: _async(metric(
            ingestor, "radar_ingestor_feed_polls_total", feed=f"wire-{RUN}",
            result="not_modified") >= 2), 30, message="304 answers")
        growing["items"] = [feed_item(2), feed_item(1)]
        growing["version"] = 2
        second = "guid-" + _h(feed_item(2)[0])
        await reader.wait_for(lambda rs: second in ids(rs), 30, message="the new item")
        await reader.poll()
    published = ids(reader.records)
    assert [published.count(i) for i in (first, second, hundred)] == [1, 1, 1]
    assert site.hits["/wire.rss"] >= 4
    assert metric(ingestor, "radar_ingestor_feed_errors_total", feed=f"flaky-{RUN}",
                  reason="http_status") == 2
    assert metric(ingestor, "radar_ingestor_feed_errors_total", feed=f"bomb-{RUN}",
                  reason="xml_forbidden") >= 1
    assert metric(ingestor, "radar_ingestor_feed_poll_seconds_count", feed=f"wire-{RUN}") >= 4
    assert metric(ingestor, "radar_ingestor_fetched_bytes_total", channel="feed") > 0
    assert metric(ingestor, "radar_ingestor_articles_total", channel="feed",
                  outcome="duplicate") >= 1  # item 1 again in the grown feed
    for name in ("wire", "flaky", "bomb"):
        removed = await loop.run_in_executor(None, feeds_cli, env, "remove", f"{name}-{RUN}")
        assert removed.returncode == 0, removed.stderr
    await async_wait_until(lambda: _async(ingestor.healthy() and httpx.get(
        ingestor.base_url + "/health").json()["feeds"] == 0), 10, message="feeds removed")


# ------------------------------------------------------------------ pages


async def test_fetch_page_and_refuse_private_targets(ingestor: ServiceProcess, bootstrap: str,
                                                     site: LocalSite) -> None:
    site.serve("/aurora.html", (DATA / "boilerplate.html").read_bytes(), "text/html")
    site.route("/moved", redirect(site.url("/aurora.html"), 301))
    site.route("/to-private", redirect("http://10.20.30.40/admin"))
    site.route("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
    loop = asyncio.get_running_loop()
    ok = await loop.run_in_executor(None, post, ingestor, {"url": site.url("/moved")}, "/fetch")
    assert ok.status_code == 202, ok.text
    [item] = ok.json()["items"]
    assert item["status"] == "published"
    for path in ("/to-private", "/to-metadata"):
        refused = await loop.run_in_executor(None, post, ingestor, {"url": site.url(path)},
                                             "/fetch")
        assert refused.status_code == 400 and refused.json()["reason"] == "forbidden_address"
    bad_scheme = await loop.run_in_executor(None, post, ingestor,
                                            {"url": "file:///etc/passwd"}, "/fetch")
    assert bad_scheme.json()["reason"] == "bad_scheme"
    assert metric(ingestor, "radar_ingestor_fetch_errors_total", channel="page",
                  reason="forbidden_address") >= 2
    async with TopicReader(bootstrap, ARTICLES) as reader:
        await reader.wait_for(lambda rs: item["article_id"] in ids(rs), message="the page")
    [page] = [a for a in valid(reader.records, ArticleEvent)
              if a.article_id == item["article_id"]]
    assert page.url == site.url("/aurora.html") and page.source == "The Example Ledger"
    assert page.text.startswith("LONDON, June 18") and "newsletter" not in page.text


# ------------------------------------------------------------------ the Kafka inbox


async def test_inbox_publishes_good_items_and_dead_letters_bad_documents(
        ingestor: ServiceProcess, bootstrap: str, site: LocalSite) -> None:
    site.route("/to-private", redirect("http://192.168.7.7/"))
    good = {"id": f"inbox-good-{RUN}", "text": "Orion Batteries Inc and Castellan Motors Corp "
                                               "are in talks on a cell plant, people said."}
    mixed = RawDocument(document_id=f"doc-mixed-{RUN}", name="drop.jsonl",
                        content=json.dumps(good) + '\n{"id": "broken", "text": \n')
    fetch = RawDocument(document_id=f"doc-url-{RUN}", url=site.url("/to-private"))
    await produce(bootstrap, INBOX, [(b"junk", b"\x00not json"),
                                     (mixed.key(), mixed.to_bytes()),
                                     (fetch.key(), fetch.to_bytes())])
    async with TopicReader(bootstrap, INBOX + ".dlq") as dlq:
        await dlq.wait_for(lambda rs: len(rs) >= 3, 60, message="3 dead letters")
    letters = {d.record_key: d for d in valid(dlq.records, DeadLetter)}
    assert letters[b"junk"].reason == "invalid_json"
    assert letters[b"junk"].service == "ingestor"
    assert letters[mixed.key()].reason == "invalid_json"
    assert "1 of 2 item(s) rejected: drop.jsonl:2" in letters[mixed.key()].error
    assert letters[fetch.key()].reason == "forbidden_address"
    async with TopicReader(bootstrap, ARTICLES) as reader:
        await reader.wait_for(lambda rs: good["id"] in ids(rs), message="good inbox item")
    assert ingestor.healthy()


# ------------------------------------------------------------------ watched folder


async def test_watched_folder_takes_pages_and_refuses_oversized_files(
        ingestor: ServiceProcess, env: dict[str, str], bootstrap: str) -> None:
    drop = Path(env["RADAR_INGESTOR_WATCH_DIR"])
    body = ("ZURICH, Sept 3 - Borealis Robotics AG and Zenith Logistics SA said on Monday they "
            "had formed a joint venture to run automated warehouses across Europe, starting "
            "with two sites in Switzerland and one in France next spring. Each company will "
            "own half of the venture, which will employ about 300 people, the firms said.")
    (drop / "borealis.html").write_text(PAGE.format(title="Borealis and Zenith team up",
                                                    body=body))
    (drop / "huge.jsonl").write_bytes(b"x" * 300_000)
    await async_wait_until(lambda: _async(not (drop / "borealis.html").exists()
                                          and not (drop / "huge.jsonl").exists()), 20,
                           message="files taken")
    assert (drop / "huge.jsonl.done").exists()
    assert metric(ingestor, "radar_ingestor_rejected_total", channel="folder",
                  reason="too_large") == 1
    async with TopicReader(bootstrap, ARTICLES) as reader:
        await reader.wait_for(lambda rs: any(a.title.startswith("Borealis") for a in
                                             valid(rs, ArticleEvent)), message="folder page")


# ------------------------------------------------------------------ radar ingest


def ingest_cli(env: dict[str, str], *args: str, stdin: str | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.feeds", "ingest", *args],
                          env=env, input=stdin, capture_output=True, text=True, timeout=60)


async def test_radar_ingest_shares_dedup_with_the_service(
        ingestor: ServiceProcess, env: dict[str, str], tmp_path: Path, site: LocalSite) -> None:
    article = {"id": f"cli-{RUN}", "text": "Meridian Air and Aurora Airlines are in talks on "
                                           "a cargo venture, the airlines said on Monday."}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(article) + "\n" + '{"id": "bad", "text": ""}\n')
    loop = asyncio.get_running_loop()
    done = await loop.run_in_executor(None, ingest_cli, env, str(path))
    assert done.returncode == 2, done.stderr
    assert "published 1 article(s), skipped 1 (1 rejected)" in done.stdout
    assert "one.jsonl:2" in done.stderr and "no text" in done.stderr
    # The service follows the seen topic: the CLI's story is a duplicate over HTTP too.
    await async_wait_until(lambda: _async(
        statuses(post(ingestor, article | {"id": f"cli-http-{RUN}"})) == ["duplicate"]), 10,
        message="service knows the CLI's story")
    again = await loop.run_in_executor(None, lambda: ingest_cli(env, "-",
                                                                stdin=json.dumps(article)))
    assert again.returncode == 0 and "published 0 article(s), skipped 1 (1 duplicate)" in \
        again.stdout
    body = ("SYDNEY, Oct 2 - Australis Mining Ltd and Kestrel Rail Pty agreed to build and "
            "run a shared ore railway in Western Australia, splitting the cost of the 400 km "
            "line and its rolling stock, the companies said in a filing on Wednesday.")
    site.serve("/page.html", PAGE.format(title="Australis, Kestrel agree rail deal", body=body),
               "text/html")
    site.route("/sneaky", redirect("http://10.9.8.7/"))
    page = await loop.run_in_executor(None, ingest_cli, env, site.url("/page.html"))
    assert page.returncode == 0 and "published 1 article(s)" in page.stdout, page.stderr
    sneaky = await loop.run_in_executor(None, ingest_cli, env, site.url("/sneaky"))
    assert sneaky.returncode == 1 and "private address; refused" in sneaky.stderr
    missing = await loop.run_in_executor(None, ingest_cli, env, str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


# ------------------------------------------------------------------ HTTP fuzzing


JUNK = st.one_of(
    st.text(max_size=120).map(lambda s: s.replace("\n", " ").replace("\r", " ")),
    st.dictionaries(st.sampled_from(["id", "text", "published_at", "title", "url", "x"]),
                    st.one_of(st.none(), st.integers(), st.floats(allow_nan=False),
                              st.text(max_size=40), st.lists(st.integers(), max_size=3)),
                    max_size=5).map(json.dumps),
    st.sampled_from(['{"id": "x", "text": ', "<rss><channel>", "[1,2", '{"text": ""}', "null",
                     '{"published_at": 1e999, "text": "x"}', "<!DOCTYPE x [<!ENTITY a 'b'>]>"]))
COUNTER = itertools.count()


def test_http_fuzz_keeps_the_service_up_and_the_valid_article(
        ingestor: ServiceProcess, bootstrap: str) -> None:
    sent: list[str] = []

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(JUNK, max_size=6), st.integers(0, 6), st.binary(max_size=300))
    def batch(junk: list[str], at: int, noise: bytes) -> None:
        n = next(COUNTER)
        good = {"id": f"fuzz-{RUN}-{n}", "text": f"Fuzz{n} Industries and Probe{n} Labs signed "
                                                  f"an agreement {n} to build sensors together."}
        lines = [*junk]
        lines.insert(min(at, len(lines)), json.dumps(good))
        resp = post(ingestor, "\n".join(lines))
        assert resp.status_code == 202, resp.text
        assert {"where": good["id"], "status": "published", "article_id": good["id"],
                "language": "en"} in resp.json()["items"]
        sent.append(good["id"])
        raw = post(ingestor, noise or b" ")
        assert raw.status_code in (202, 400), raw.text

    batch()
    assert ingestor.alive() and ingestor.healthy()
    too_big = post(ingestor, b"x" * 300_000)
    assert too_big.status_code == 413

    async def on_topic() -> set[str]:
        async with TopicReader(bootstrap, ARTICLES) as reader:
            records = await reader.wait_for(lambda rs: set(sent) <= set(ids(rs)),
                                            message="every fuzz article")
        return set(ids(records))

    assert set(sent) <= asyncio.run(on_topic())


async def _async(value: object) -> object:
    return value


def _h(text: str) -> str:
    from shared.contracts import stable_hash

    return stable_hash(text)
