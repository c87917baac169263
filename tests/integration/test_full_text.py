"""Full-text feeds end to end: a real ingestor process polls a summary-only feed served on
127.0.0.1 (added with `radar feeds add --full-text` to a feeds file that starts as
`feeds = []`), fetches each new item's page politely (robots.txt obeyed, one request per host
per interval) and publishes the page's text; the disallowed and the missing page keep their
summaries; `radar_ingestor_full_text_total` counts each result."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from services.cli.stack import ServiceProcess
from shared.broker import free_port
from shared.contracts import ArticleEvent
from tests.helpers import TopicReader, async_wait_until, running_ingestor, valid
from tests.integration.test_ingest_service import metric
from tests.unit.test_ingest_fetch import LocalSite

RUN = uuid.uuid4().hex[:8]
ARTICLES = f"it-fulltext-{RUN}.articles"
INTERVAL_S = 0.4
STORY = ("Northwind Energy ASA and Solvane Hydrogen AB agreed on Tuesday to build a green "
         "hydrogen plant together in northern Norway, the companies said in a joint statement. "
         "The partners will share the cost of the first 200 megawatt electrolyser and plan to "
         "sell the hydrogen to steel makers and shipping companies along the coast.")
SECOND = ("Calder Motors and Brightmoor Steel signed a supply agreement for lightweight "
          "body panels on Wednesday, the companies said. Brightmoor will deliver the panels "
          "from its plant in Ohio for six years starting in the spring, and the two firms "
          "will develop a new alloy together in a shared laboratory near Detroit.")
PAGE = ("<!DOCTYPE html><html><head><title>{title}</title></head><body><nav><a href='/'>Home"
        "</a></nav><article><h1>{title}</h1><p>{body}</p><p>Construction is due to start "
        "next year, pending permits, the statement said.</p></article><footer>&copy; 2024 "
        "Example</footer></body></html>")


@pytest.fixture(scope="module")
def env(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    run = tmp_path_factory.mktemp("fulltext")
    feeds = run / "feeds.toml"
    feeds.write_text("feeds = []\n")  # the form that once broke `radar feeds add`
    return dict(os.environ) | {
        "RADAR_BOOTSTRAP_SERVERS": bootstrap, "RADAR_PROFILE": "embedded",
        "RADAR_TOPIC_ARTICLES": ARTICLES, "RADAR_INGESTOR_SEEN_TOPIC": f"{ARTICLES}.seen",
        "RADAR_INGESTOR_INBOX_TOPIC": f"{ARTICLES}.inbox", "RADAR_INGESTOR_GROUP_ID": ARTICLES,
        "RADAR_INGESTOR_HOST": "127.0.0.1", "RADAR_INGESTOR_PORT": str(free_port()),
        "RADAR_INGESTOR_FEEDS_FILE": str(feeds), "RADAR_INGESTOR_FEED_INTERVAL_S": "0.5",
        "RADAR_INGESTOR_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
        "RADAR_INGESTOR_FETCH_TIMEOUT_S": "3",
        "RADAR_INGESTOR_FULL_TEXT_HOST_INTERVAL_S": str(INTERVAL_S),
        "PYTHONUNBUFFERED": "1", "RUN_DIR": str(run)}


@pytest.fixture(scope="module")
def ingestor(env: dict[str, str]) -> Iterator[ServiceProcess]:
    with running_ingestor(env) as svc:
        yield svc


def rss(site: LocalSite, items: list[tuple[str, str]]) -> str:
    body = "".join(f"<item><title>{title}</title><guid>{RUN}-{title}</guid><link>"
                   f"{site.url(path)}</link><description>{title}: Northwind and Solvane "
                   f"sign a hydrogen deal.</description></item>" for title, path in items)
    return f'<rss version="2.0"><channel><title>Summaries {RUN}</title>{body}</channel></rss>'


async def test_full_text_feed(ingestor: ServiceProcess, env: dict[str, str], bootstrap: str
                              ) -> None:
    requests: list[tuple[float, str]] = []  # pages and robots.txt, when they were asked

    def timed(handler):
        async def wrapped(request: web.Request) -> web.Response:
            requests.append((time.monotonic(), request.path))
            return await handler(request)
        return wrapped

    async def page(request: web.Request) -> web.Response:
        title = request.path.rsplit("/", 1)[-1]
        body = STORY if title != "second" else SECOND
        return web.Response(text=PAGE.format(title=title, body=body), content_type="text/html")

    async def robots(_: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nDisallow: /private/\n")

    async with LocalSite() as site:
        items = [("open", "/news/open"), ("secret", "/private/secret"),
                 ("gone", "/news/gone"), ("second", "/news/second")]
        site.serve("/summaries.rss", rss(site, items), "application/rss+xml")
        for path in ("/news/open", "/news/second", "/private/secret"):
            site.route(path, timed(page))
        site.route("/robots.txt", timed(robots))
        site.route("/news/gone", timed(lambda _: _not_found()))
        loop = asyncio.get_running_loop()  # the CLI in a thread: the site keeps answering
        added = await loop.run_in_executor(None, lambda: subprocess.run(
            [sys.executable, "-m", "services.cli.feeds", "feeds", "add",
             site.url("/summaries.rss"), "--name", f"summaries-{RUN}", "--full-text"],
            env=env, capture_output=True, text=True, timeout=60))
        assert added.returncode == 0, added.stderr
        assert "full_text = true" in Path(env["RADAR_INGESTOR_FEEDS_FILE"]).read_text()

        async with TopicReader(bootstrap, ARTICLES) as reader:
            await reader.wait_for(lambda rs: len(valid(rs, ArticleEvent)) >= 4, 45,
                                  message="the four feed items")
            by_title = {a.title: a for a in valid(reader.records, ArticleEvent)}
        # Polls go on; what was fetched once is not fetched again.
        polls = metric(ingestor, "radar_ingestor_feed_polls_total", feed=f"summaries-{RUN}")
        await async_wait_until(lambda: _now(metric(
            ingestor, "radar_ingestor_feed_polls_total", feed=f"summaries-{RUN}") >= polls + 3),
            30, message="three more polls")
    assert STORY in by_title["open"].text and SECOND in by_title["second"].text
    assert "Construction is due to start" in by_title["open"].text
    assert by_title["open"].url == site.url("/news/open")
    assert by_title["secret"].text == "secret: Northwind and Solvane sign a hydrogen deal."
    assert by_title["gone"].text.startswith("gone: ")
    assert site.hits["/private/secret"] == 0 and site.hits["/robots.txt"] == 1
    stamps = sorted(t for t, _ in requests)
    assert len(stamps) == 4, requests  # robots.txt, open, gone, second: one host, paced
    assert all(b - a >= INTERVAL_S * 0.9 for a, b in itertools.pairwise(stamps))
    feed = f"summaries-{RUN}"
    assert metric(ingestor, "radar_ingestor_full_text_total", feed=feed,
                  result="full_text") == 2
    assert metric(ingestor, "radar_ingestor_full_text_total", feed=feed,
                  result="robots_disallowed") == 1
    assert metric(ingestor, "radar_ingestor_full_text_total", feed=feed,
                  result="http_status") == 1


async def _now(value: bool) -> bool:
    return value


async def _not_found() -> web.Response:
    return web.Response(status=404, text="gone")
