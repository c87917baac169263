"""The feeds file and the poller, against feeds served on 127.0.0.1: a feed that gains items
between polls, one that answers 304, one that errors then recovers, an XML bomb."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from services.ingestor.feeds import (
    FeedConfig,
    FeedPoller,
    FeedsFileError,
    add_feed,
    backoff_delay,
    load_feeds,
    remove_feed,
)
from services.ingestor.fetch import FetchPolicy, SafeFetcher
from services.ingestor.sources import Parsed
from shared.contracts import ArticleEvent
from tests.unit.test_ingest_fetch import LOOPBACK, LocalSite

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"


def rss(*items: tuple[str, str]) -> str:
    """An RSS 2.0 feed of (guid, sentence) items."""
    body = "".join(f"<item><title>{guid}</title><guid>{guid}</guid>"
                   f"<link>https://wire.example.com/{guid}</link>"
                   f"<description>{text}</description></item>" for guid, text in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test Wire</title>' \
           f"{body}</channel></rss>"


ONE = ("n-1", "Acme Corp and Beta Inc are in talks on a battery venture, the companies said.")
TWO = ("n-2", "Gamma Ltd and Delta AG signed an agreement to build chips together.")


# ------------------------------------------------------------------ the feeds file


def test_feeds_file_add_list_remove_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    assert load_feeds(path) == []
    add_feed(path, FeedConfig(url="https://a.example.com/rss", name="A"))
    text = path.read_text().replace("[[feeds]]", "# my favourite\n[[feeds]]", 1)
    path.write_text(text)
    add_feed(path, FeedConfig(url="https://b.example.com/atom", interval_s=60))
    feeds = load_feeds(path)
    assert [(f.url, f.label, f.interval_s) for f in feeds] == [
        ("https://a.example.com/rss", "A", None), ("https://b.example.com/atom",
                                                   "b.example.com", 60.0)]
    assert remove_feed(path, "A").url == "https://a.example.com/rss"
    assert [f.url for f in load_feeds(path)] == ["https://b.example.com/atom"]
    assert "# my favourite" in path.read_text()
    with pytest.raises(FeedsFileError, match="already a feed"):
        add_feed(path, FeedConfig(url="https://b.example.com/atom"))
    with pytest.raises(FeedsFileError, match="no feed"):
        remove_feed(path, "nope")


@pytest.mark.parametrize(("text", "message"), [
    ("[[feeds]]\nurl = 'ftp://x.example.com/'\n", "http"),
    ("[[feeds]]\nurl = 'https://x.example.com/'\ninterval_s = -1\n", "interval_s"),
    ("[[feeds]]\nurl = 'https://x.example.com/'\ncolour = 'red'\n", "colour"),
    ("[[feeds]\n", "line 1"),
    ("[[feeds]]\nurl = 'https://x.example.com/'\n[[feeds]]\nurl = 'https://x.example.com/'\n",
     "twice"),
])
def test_bad_feeds_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text)
    with pytest.raises(FeedsFileError, match=message):
        load_feeds(path)


def test_backoff_doubles_per_failure_up_to_the_cap() -> None:
    assert [backoff_delay(10, n, 100) for n in range(6)] == [10, 20, 40, 80, 100, 100]
    assert backoff_delay(10, 10_000, 3600) == 3600


# ------------------------------------------------------------------ the poller


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collector:
    """Stands in for the intake: keeps items, 'publishes' the ids it has not seen."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.batches: list[list[Parsed]] = []

    async def __call__(self, items: list[Parsed], feed: FeedConfig) -> int:
        self.batches.append(items)
        new = {i.article_id for i in items if isinstance(i, ArticleEvent)} - self.seen
        self.seen |= new
        return len(new)


@pytest.fixture
async def site():
    async with LocalSite() as s:
        yield s


def poller(tmp_path: Path, site: LocalSite, *paths: str, collector: Collector,
           clock: Clock) -> FeedPoller:
    path = tmp_path / "feeds.toml"
    for p in paths:
        add_feed(path, FeedConfig(url=site.url(p), name=p.strip("/"), interval_s=10))
    return FeedPoller(path, SafeFetcher(FetchPolicy(allow_networks=LOOPBACK)), collector,
                      max_backoff=60, clock=clock)


async def test_feed_that_gains_items_between_polls(tmp_path: Path, site: LocalSite) -> None:
    feed = {"body": rss(ONE)}

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=feed["body"], content_type="application/rss+xml")

    site.route("/grows", handler)
    clock, got = Clock(), Collector()
    p = poller(tmp_path, site, "/grows", collector=got, clock=clock)
    try:
        assert await p.run_once() == ["new"]
        assert await p.run_once() == []  # not due yet
        clock.now += 10
        assert await p.run_once() == ["unchanged"]
        feed["body"] = rss(TWO, ONE)
        clock.now += 10
        assert await p.run_once() == ["new"]
    finally:
        await p.fetcher.aclose()
    assert got.seen == {"guid-" + _h("n-1"), "guid-" + _h("n-2")}
    assert site.hits["/grows"] == 3


async def test_conditional_get_answered_304(tmp_path: Path, site: LocalSite) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"e1"' and \
                request.headers.get("If-Modified-Since") == "Tue, 05 Mar 2024 08:00:00 GMT":
            return web.Response(status=304)
        return web.Response(text=rss(ONE), headers={
            "ETag": '"e1"', "Last-Modified": "Tue, 05 Mar 2024 08:00:00 GMT"})

    site.route("/etag", handler)
    clock, got = Clock(), Collector()
    p = poller(tmp_path, site, "/etag", collector=got, clock=clock)
    try:
        results = []
        for _ in range(3):
            results += await p.run_once()
            clock.now += 10
    finally:
        await p.fetcher.aclose()
    assert results == ["new", "not_modified", "not_modified"]
    assert len(got.batches) == 1  # a 304 is not parsed again
    assert "If-None-Match" not in site.headers["/etag"][0]


async def test_feed_that_errors_backs_off_then_recovers(tmp_path: Path,
                                                        site: LocalSite) -> None:
    answers = iter([500, 503, 200, 200])

    async def handler(_: web.Request) -> web.Response:
        status = next(answers)
        return web.Response(status=status, text=rss(ONE) if status == 200 else "down")

    site.route("/flaky", handler)
    clock, got = Clock(), Collector()
    p = poller(tmp_path, site, "/flaky", collector=got, clock=clock)
    state = None
    waits = []
    try:
        for _ in range(4):
            result = await p.run_once()
            state = p.states[site.url("/flaky")]
            waits.append((result, state.failures, state.next_due - clock.now))
            clock.now = state.next_due
    finally:
        await p.fetcher.aclose()
    assert waits == [(["error"], 1, 20), (["error"], 2, 40), (["new"], 0, 10),
                     (["unchanged"], 0, 10)]
    assert state is not None and state.last_error is None and got.seen


@pytest.mark.parametrize(("fixture", "reason"), [("bomb.xml", "xml_forbidden"),
                                                 ("xxe.xml", "xml_forbidden"),
                                                 ("boilerplate.html", "not_a_feed")])
async def test_hostile_or_wrong_documents_are_feed_errors(tmp_path: Path, site: LocalSite,
                                                          fixture: str, reason: str) -> None:
    site.serve("/bad", (DATA / fixture).read_bytes())
    clock, got = Clock(), Collector()
    p = poller(tmp_path, site, "/bad", collector=got, clock=clock)
    try:
        assert await p.run_once() == ["error"]
    finally:
        await p.fetcher.aclose()
    state = p.states[site.url("/bad")]
    assert state.last_error is not None and state.last_error.startswith(reason)
    assert got.batches == []


async def test_feeds_file_changes_are_picked_up(tmp_path: Path, site: LocalSite) -> None:
    site.serve("/a", rss(ONE))
    site.serve("/b", rss(TWO))
    clock, got = Clock(), Collector()
    p = poller(tmp_path, site, "/a", collector=got, clock=clock)
    try:
        assert await p.run_once() == ["new"]
        add_feed(p.path, FeedConfig(url=site.url("/b"), interval_s=50))
        assert await p.run_once() == ["new"]  # /b is due at once, /a not yet
        remove_feed(p.path, "a")
        clock.now += 100
        assert await p.run_once() == ["unchanged"]
        p.path.write_text("[[feeds]\n")  # broken: keep polling what we had
        clock.now += 100
        assert await p.run_once() == ["unchanged"]
    finally:
        await p.fetcher.aclose()
    assert list(p.states) == [site.url("/b")]
    assert site.hits == {"/a": 1, "/b": 3}


@pytest.mark.parametrize("fixture", ["rss091.xml", "rss10.rdf", "rss20.xml", "atom.xml"])
async def test_every_feed_flavour_polls(tmp_path: Path, site: LocalSite, fixture: str) -> None:
    site.serve("/f", (DATA / fixture).read_bytes())
    clock, got = Clock(), Collector()
    p = poller(tmp_path, site, "/f", collector=got, clock=clock)
    try:
        assert await p.run_once() == ["new"]
    finally:
        await p.fetcher.aclose()
    assert all(isinstance(i, ArticleEvent) for i in got.batches[0])


def _h(text: str) -> str:
    from shared.contracts import stable_hash

    return stable_hash(text)
