"""Hostile documents at the ingestor's parsing doors (pure: no broker): JSON Lines files,
feed XML, HTML pages. Whatever the bytes: no exception escapes, each rejection is an
`InputError` with a reason (the metrics label) and a place, and the good items of the same
document are kept. `make test` runs a short deterministic profile, `make fuzz` 10,000 cases
per door (tests/fuzzing.py)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.ingestor.dedup import SeenIndex
from services.ingestor.documents import parse_document
from services.ingestor.language import LanguagePolicy
from services.ingestor.pages import extract_page
from services.ingestor.publish import Judge
from services.ingestor.sources import InputError, parse_feed
from shared.contracts import ArticleEvent
from tests.fuzzing import door, hypothesis_profile

REASON = re.compile(r"^[a-z][a-z0-9_]{2,40}$")
GOOD_TEXT = ("Northwind Energy ASA and Solvane Hydrogen AB agreed to build a green hydrogen "
             "plant together in northern Norway, the companies said in a joint statement.")

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["id", "article_id", "text", "title", "published_at", "url", "source",
                     "language", "guid", "x"]), inner, max_size=6), max_leaves=15)
junk_lines = st.one_of(
    st.text(max_size=300).map(lambda s: " ".join(s.splitlines())),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")).map(lambda s: " ".join(
        s.splitlines())),
    st.sampled_from(['{"id": "x", "text": ', "[" * 5000, '{"text": "' + "w" * 1200 + '"}',
                     '{"text": "ok", "published_at": "2024-02-30"}', "<rss>", "<html>",
                     '{"text": "x", "published_at": 1e400}', "\ufeff{}", "\x00"]))


def check(items: list, name: str) -> list[InputError]:
    errors = []
    for item in items:
        assert isinstance(item, (ArticleEvent, InputError)), item
        if isinstance(item, InputError):
            assert REASON.match(item.reason), item
            assert item.where.startswith(name) and item.message, item
            errors.append(item)
    return errors


@hypothesis_profile(300)
@given(st.lists(junk_lines, max_size=10), st.integers(0, 10), st.sampled_from(
    ["news.jsonl", "news.json", "body", "drop.txt"]))
def test_json_lines_files(junk: list[str], at: int, name: str) -> None:
    with door("JSON Lines files") as report:
        good = {"id": "good-one", "text": GOOD_TEXT, "published_at": "2024-05-21"}
        lines = list(junk)
        lines.insert(min(at, len(lines)), json.dumps(good))
        items = list(parse_document("\n".join(lines).encode(), name=name, default_source="f"))
        errors = check(items, name)
        report.cases += 1
        report.rejected += len(errors)
        if name.endswith(".txt"):
            return  # prose by definition
        judge = Judge(SeenIndex(timedelta(hours=1)), LanguagePolicy(allowed=None))
        published = {v.article.article_id for v in map(judge.decide, items) if v.article}
        assert "good-one" in published, items


xml_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
xml_junk = st.one_of(
    xml_text.map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;")),
    st.sampled_from(["<![CDATA[ <b>x</b> ]]>", "&amp;amp;", "&#0;", "&#x110000;", "&bogus;",
                     "<x:y xmlns:x='urn:x'/>", "<description/>", "<title></title>",
                     "<pubDate>not a date</pubDate>", "<pubDate>Mon, 99 Foo 20245</pubDate>",
                     "<link>javascript:alert(1)</link>", "<guid></guid>", "<" * 50,
                     "<item>" * 300, "]]>", "<?pi x?>", "<!-- c -->"]),
    xml_text)
doctypes = st.sampled_from(["", '<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">]>',
                            '<!DOCTYPE rss SYSTEM "file:///etc/passwd">',
                            '<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]>'])


@hypothesis_profile(300)
@given(doctypes, st.lists(st.lists(xml_junk, max_size=4), max_size=5), st.integers(0, 5),
       st.sampled_from(["rss", "atom"]), st.booleans())
def test_feed_xml(doctype: str, junk_items: list[list[str]], at: int, kind: str,
                  break_it: bool) -> None:
    with door("feed XML") as report:
        good = (f"<item><guid>good-guid</guid><title>Hydrogen pact</title><description>"
                f"{GOOD_TEXT}</description></item>") if kind == "rss" else (
            f"<entry><id>good-guid</id><title>Hydrogen pact</title><summary>{GOOD_TEXT}"
            f"</summary></entry>")
        tag = "item" if kind == "rss" else "entry"
        entries = [f"<{tag}>{''.join(parts)}</{tag}>" for parts in junk_items]
        entries.insert(min(at, len(entries)), good)
        body = "".join(entries)
        document = (f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>W'
                    f"</title>{body}</channel></rss>") if kind == "rss" else (
            f'<?xml version="1.0"?>{doctype}<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>W</title>{body}</feed>")
        if break_it:
            document = document[:len(document) // 2]
        items = list(parse_feed(document.encode(), name="feed", default_source="f"))
        errors = check(items, "feed")
        report.cases += 1
        report.rejected += len(errors)
        whole_document_refused = len(items) == 1 and errors and errors[0].where == "feed"
        assert not any("root:" in i.text for i in items if isinstance(i, ArticleEvent))
        if "ENTITY" in doctype:
            # Entity declarations (bombs, external entities): refused as a whole.
            assert whole_document_refused and errors[0].reason == "xml_forbidden", items
            return
        if break_it or whole_document_refused:
            return  # malformed XML: refused as a whole, or read as far as it goes
        ids = {i.article_id for i in items if isinstance(i, ArticleEvent)}
        assert any(i.startswith("guid-") for i in ids), items


html_tags = st.sampled_from(["div", "p", "article", "nav", "script", "style", "span", "a",
                             "table", "td", "li", "ul", "h1", "header", "footer", "svg",
                             "iframe", "template", "noscript", "main", "b", "br", "meta"])


@st.composite
def html_fragments(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        choice = draw(st.integers(0, 3 if depth < 6 else 1))
        if choice == 0:
            parts.append(draw(xml_text).replace("<", "&lt;"))
        elif choice == 1:
            parts.append(draw(st.sampled_from(["&nbsp;", "&#x0;", "&amp;amp;", "<!--", "-->",
                                               "<", ">", "</div>", "<br/>", "&#99999999;"])))
        else:
            tag = draw(html_tags)
            attrs = draw(st.sampled_from(["", ' class="x"', " onload=alert(1)",
                                          ' style="display:none"', ' lang="de"']))
            parts.append(f"<{tag}{attrs}>{draw(html_fragments(depth + 1))}</{tag}>")
    return "".join(parts)


@hypothesis_profile(150)
@given(html_fragments(), st.booleans(), st.binary(max_size=200))
def test_html_pages(junk: str, with_article: bool, noise: bytes) -> None:
    with door("HTML pages") as report:
        article = f"<article><h1>Hydrogen pact</h1><p>{GOOD_TEXT}</p></article>" \
            if with_article else ""
        page = (f"<!DOCTYPE html><html><head><title>T</title></head><body>{junk}{article}"
                f"{junk}</body></html>").encode() + noise
        item = extract_page(page, name="page.html", default_source="web")
        errors = check([item], "page.html")
        report.cases += 1
        report.rejected += len(errors)
