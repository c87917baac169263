"""Every form of news in: RSS 0.91 / 1.0 (RDF) / 2.0, Atom, web pages, hostile documents."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.ingestor.documents import parse_document
from services.ingestor.pages import extract_page, looks_like_html
from services.ingestor.sources import InputError, parse_time
from shared.contracts import ArticleEvent

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"


def parse(name: str, **kw: object) -> list:
    return list(parse_document((DATA / name).read_bytes(), name=name, default_source="x",
                               **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "source", "title", "year"), [
    ("rss091.xml", "Harbor Business Wire", "Northwind Energy and Solvane", None),
    ("rss10.rdf", "RDF Market Notes", "Greenleaf Markets in talks", 2024),
    ("rss20.xml", "Auto Wire", "Castellan Motors and Orion", 2024),
    ("atom.xml", "Chip News", "Veritas Semiconductor and Pinnacle", 2024),
])
def test_feed_flavours(name: str, source: str, title: str, year: int | None) -> None:
    first = parse(name)[0]
    assert isinstance(first, ArticleEvent)
    assert first.source == source and first.title.startswith(title)
    assert first.language == "en" and first.url and first.url.startswith("https://")
    if year is not None:
        assert first.published_at.year == year


def test_rss20_content_encoded_wins_and_is_cleaned() -> None:
    castellan, pinnacle = parse("rss20.xml")
    assert castellan.text == (
        "DETROIT, Nov 26 (Auto Wire) - Castellan Motors Corp and Orion Batteries Inc signed an "
        "agreement on Tuesday under which Orion will supply battery cells for Castellan\u2019s "
        "next electric pickup.\n\nThe companies did not disclose the value of the deal.")
    assert castellan.article_id.startswith("guid-")
    assert pinnacle.published_at.isoformat() == "2024-11-04T21:00:00+00:00"  # +0900 -> UTC


@pytest.mark.parametrize("name", ["bomb.xml", "xxe.xml"])
def test_entity_tricks_are_refused_fast(name: str) -> None:
    started = time.perf_counter()
    [item] = parse(name)
    assert isinstance(item, InputError) and item.reason == "xml_forbidden"
    assert time.perf_counter() - started < 1.0
    assert "root:" not in item.message


def test_page_with_heavy_boilerplate_gives_only_the_article() -> None:
    [page] = parse("boilerplate.html", url="https://ledger.example.com/aurora-meridian")
    assert isinstance(page, ArticleEvent)
    assert page.title == "Aurora Airlines and Meridian Air deepen alliance"
    assert page.source == "The Example Ledger"
    assert page.url == "https://ledger.example.com/aurora-meridian"
    assert page.published_at.date().isoformat() == "2024-06-18"
    assert page.text.startswith("LONDON, June 18 (The Example Ledger) - Aurora Airlines")
    assert page.text.endswith("busiest long-haul market in the world.")
    assert page.text.count("\n\n") == 3  # four paragraphs
    for debris in ("cookies", "Share on", "Subscribe", "newsletter", "Most popular",
                   "Related", "Privacy", "Celebrity", "gtag", "All rights", "Comments"):
        assert debris not in page.text, debris
    assert "Aurora\u2019s chief executive" in page.text  # entities decoded


def test_html_is_recognised_by_suffix_or_content() -> None:
    assert looks_like_html(b"anything", "page.HTM")
    assert looks_like_html(b"  <!DOCTYPE html><html></html>")
    assert not looks_like_html(b"<rss version='2.0'></rss>", "feed.xml")


def test_page_without_an_article_and_html_entity_bomb() -> None:
    empty = extract_page(b"<html><body><nav>Home</nav></body></html>", name="p.html",
                         default_source="x")
    assert isinstance(empty, InputError) and empty.reason == "no_article_text"
    bomb = (b'<!DOCTYPE html [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><html><body><article><p>&c;&c;&c;'
            b"</p></article></body></html>")
    started = time.perf_counter()
    result = extract_page(bomb, name="bomb.html", default_source="x")
    assert time.perf_counter() - started < 2.0
    assert isinstance(result, InputError) or len(result.text) < 1000


@pytest.mark.parametrize("doc", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"id": "x", "text": "t"}\n' + b"[" * 100_000,
])
def test_deeply_nested_json_is_a_clean_rejection(doc: bytes) -> None:
    items = list(parse_document(doc, name="deep", default_source="x"))
    assert items and all(isinstance(i, (InputError, ArticleEvent)) for i in items)
    assert any(isinstance(i, InputError) and i.reason in ("invalid_json", "not_an_object")
               for i in items)


@pytest.mark.parametrize("value", [1e300, -1e300, float("nan"), True, "2024-13-45",
                                   "Tue, 99 Foo 2024", "9" * 500, [1, 2], {"a": 1}])
def test_impossible_dates_are_not_dates(value: object) -> None:
    assert parse_time(value) is None


def test_impossible_date_is_an_item_error_not_a_crash() -> None:
    doc = json.dumps({"id": "d", "text": "Acme and Beta agreed.", "published_at": 1e300})
    [item] = parse_document(doc.encode(), name="d", default_source="x")
    assert isinstance(item, InputError) and item.reason == "bad_published_at"


def test_utf8_bom_and_declared_language() -> None:
    doc = "\ufeff" + json.dumps({"id": "b", "text": "Acme and Beta agreed.",
                                 "language": "en-GB"})
    [item] = parse_document(doc.encode(), name="b", default_source="x")
    assert isinstance(item, ArticleEvent) and item.language == "en"
