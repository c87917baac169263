"""Full-text feeds without Kafka: the per-host pacer, robots.txt rules (RFC 9309), the feeds
file's `full_text` flag (and `feeds = []`), and FullText against a local site."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.feeds import standalone_app
from services.ingestor.dedup import SeenIndex
from services.ingestor.feeds import FeedConfig, add_feed, load_feeds, remove_feed
from services.ingestor.fetch import FetchPolicy, SafeFetcher
from services.ingestor.fulltext import FullText, HostPacer, robots_rules, robots_url
from services.ingestor.language import LanguagePolicy
from services.ingestor.publish import Judge
from services.ingestor.sources import parse_feed
from tests.unit.test_ingest_fetch import LocalSite

UA = "AllianceRadar/0.1 (news ingestor)"


async def test_pacer_spaces_requests_per_host() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        now[0] += seconds

    pacer = HostPacer(5.0, clock=lambda: now[0], sleep=sleep)
    await pacer.wait("a.example")
    await pacer.wait("b.example")  # another host: no wait
    await pacer.wait("a.example")
    now[0] += 7  # long after the slot: no wait
    await pacer.wait("a.example")
    assert slept == [5.0]


def test_robots_rules_follow_rfc_9309() -> None:
    rules = robots_rules(b"User-agent: *\nDisallow: /private/\n")
    assert rules.can_fetch(UA, "http://h/news/a") and not rules.can_fetch(UA, "http://h/private/b")
    named = robots_rules(b"User-agent: AllianceRadar\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    assert not named.can_fetch(UA, "http://h/news/a")
    assert robots_rules(None, 404).can_fetch(UA, "http://h/x")  # unavailable: allowed
    for status in (429, 500, 503, None):  # unreachable: nothing allowed
        assert not robots_rules(None, status).can_fetch(UA, "http://h/x")
    assert robots_url("https://news.example.com:8443/a/b?c=d") == \
        "https://news.example.com:8443/robots.txt"


def test_feeds_file_full_text_and_an_empty_inline_array(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("feeds = []\n")
    assert load_feeds(path) == []
    add_feed(path, FeedConfig(url="https://wire.example.com/rss", full_text=True))
    add_feed(path, FeedConfig(url="https://chips.example.net/atom.xml"))
    assert [(f.url, f.full_text) for f in load_feeds(path)] == [
        ("https://wire.example.com/rss", True), ("https://chips.example.net/atom.xml", False)]
    assert "full_text = false" not in path.read_text()
    remove_feed(path, "https://wire.example.com/rss")
    assert [f.url for f in load_feeds(path)] == ["https://chips.example.net/atom.xml"]
    inline = tmp_path / "inline.toml"
    inline.write_text('feeds = [{url = "https://a.example.com/rss", name = "A"}]\n')
    add_feed(inline, FeedConfig(url="https://b.example.com/rss"))
    assert [f.name for f in load_feeds(inline)] == ["A", None]


def test_feeds_add_full_text_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "feeds.toml"
    monkeypatch.setenv("RADAR_INGESTOR_FEEDS_FILE", str(path))
    done = CliRunner().invoke(standalone_app(), ["feeds", "add", "https://w.example.com/rss",
                                                 "--full-text"])
    assert done.exit_code == 0, done.output
    assert load_feeds(path)[0].full_text is True
    listed = CliRunner().invoke(standalone_app(), ["feeds", "list"])
    assert "yes" in listed.stdout


ARTICLE = ("Northwind Energy and Solvane Hydrogen agreed to build a green hydrogen plant "
           "together in northern Norway, the companies said in a joint statement on Tuesday. "
           "The partners will share the cost of the first electrolyser and plan to sell the "
           "hydrogen to steel makers and shipping companies along the coast of Norway.")
PAGE = (f"<!DOCTYPE html><html><head><title>Hydrogen pact</title></head><body><nav>Home"
        f"</nav><article><h1>Hydrogen pact</h1><p>{ARTICLE}</p><p>{ARTICLE.upper()}</p>"
        f"</article><footer>(c) Example</footer></body></html>")


def feed(site: LocalSite) -> bytes:
    items = "".join(f"<item><title>{t}</title><link>{site.url(p)}</link><guid>{t}</guid>"
                    f"<description>Northwind and Solvane in a hydrogen deal ({t}).</description>"
                    f"</item>" for t, p in (("a", "/news/a"), ("b", "/private/b"),
                                            ("c", "/news/gone"), ("d", "/news/d")))
    return f'<rss version="2.0"><channel><title>W</title>{items}</channel></rss>'.encode()


async def test_full_text_of_new_items_with_robots_and_fallbacks() -> None:
    async with LocalSite() as site:
        site.serve("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
        site.serve("/news/a", PAGE, "text/html")
        site.serve("/private/b", PAGE, "text/html")
        fetcher = SafeFetcher(FetchPolicy(timeout_s=5, allow_networks=FetchPolicy.from_settings(
            _settings()).allow_networks))
        judge = Judge(SeenIndex(timedelta(hours=1)), LanguagePolicy())
        items = list(parse_feed(feed(site), name="W", default_source="W"))
        judge.decide(items[3])  # "d" is already seen: its page is not fetched
        try:
            full = FullText(fetcher, HostPacer(0.0))
            out = await full.enrich(items, "W", judge)
            again = await full.enrich(items, "W", judge)  # nothing published in between
        finally:
            await fetcher.aclose()
    a, b, c, d = out
    assert ARTICLE in a.text and a.article_id == items[0].article_id and a.title == "a"
    assert b.text == items[1].text and c.text == items[2].text and d is items[3]
    assert site.hits["/private/b"] == 0 and site.hits["/robots.txt"] == 1
    assert site.hits["/news/a"] == 1 and site.hits["/news/d"] == 0  # "d" was seen before
    assert again == out  # remembered, not fetched again


def _settings():
    from shared.settings import IngestorSettings

    return IngestorSettings(fetch_allow_networks="127.0.0.0/8")
