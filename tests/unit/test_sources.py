import json

from services.ingestor.clean import clean_text
from services.ingestor.documents import parse_document
from services.ingestor.sources import (
    InputError,
    article_id_for,
    parse_jsonl,
)
from shared.contracts import ArticleEvent

GOOD = {"id": "x1", "title": "Acme and Beta team up", "text": "Acme Corp and Beta Inc "
        "formed a joint venture.", "published_at": "2024-05-01T10:00:00Z", "source": "Wire",
        "url": "https://news.example.com/x1"}


def test_jsonl_good_line_becomes_article():
    [item] = parse_jsonl([json.dumps(GOOD)], name="f.jsonl", default_source="f")
    assert isinstance(item, ArticleEvent)
    assert item.article_id == "x1"
    assert item.published_at.year == 2024 and item.published_at.tzinfo is not None


def test_malformed_line_is_reported_with_its_line_number_and_others_survive():
    lines = [json.dumps(GOOD), "{not json", json.dumps(GOOD | {"id": "x2"})]
    items = list(parse_jsonl(lines, name="f.jsonl", default_source="f"))
    assert [type(i).__name__ for i in items] == ["ArticleEvent", "InputError", "ArticleEvent"]
    assert items[1].where == "f.jsonl:2" and items[1].reason == "invalid_json"


def test_article_without_text_is_rejected_clearly():
    [item] = parse_jsonl([json.dumps(GOOD | {"text": "  "})], name="f", default_source="f")
    assert isinstance(item, InputError)
    assert item.reason == "missing_text" and "no text" in str(item)


def test_bad_date_is_rejected_not_guessed():
    [item] = parse_jsonl([json.dumps(GOOD | {"published_at": "last tuesday"})], name="f",
                         default_source="f")
    assert isinstance(item, InputError) and item.reason == "bad_published_at"


def test_non_object_json_line():
    [item] = parse_jsonl(["[1, 2]"], name="f", default_source="f")
    assert isinstance(item, InputError) and item.reason == "not_an_object"


def test_article_id_prefers_given_then_guid_then_url_then_content():
    assert article_id_for(given="a", guid="g", url="u", title="t", text="x") == "a"
    assert article_id_for(given=None, guid="g", url="u", title="t", text="x").startswith("guid-")
    by_url = article_id_for(given=None, guid=None, url="https://E.com/a/", title="", text="x")
    assert by_url == article_id_for(given=None, guid=None, url="https://e.com/a", title="",
                                    text="y")
    by_hash = article_id_for(given=None, guid=None, url=None, title="T", text="a  b")
    assert by_hash == article_id_for(given=None, guid=None, url=None, title="t", text="a b")


RSS = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Auto Wire</title>
<item><title>Acme, Beta in talks</title><link>https://news.example.com/1</link>
<guid>urn:1</guid><pubDate>Tue, 05 Mar 2024 08:00:00 GMT</pubDate>
<description>&lt;p&gt;Acme Corp and Beta Inc are in talks on a venture.&lt;/p&gt;
</description></item>
<item><title>No body</title><guid>urn:2</guid></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Chip News</title><id>urn:feed</id>
<updated>2024-04-01T00:00:00Z</updated>
<entry><title>Gamma and Delta sign pact</title><id>urn:e1</id>
<link href="https://news.example.com/e1"/><updated>2024-04-01T00:00:00Z</updated>
<content type="html">Gamma Corp and Delta Ltd signed an agreement.</content></entry></feed>"""


def test_rss_items_become_articles_and_empty_items_are_rejected():
    items = list(parse_document(RSS, name="feed.xml", default_source="x"))
    good = [i for i in items if isinstance(i, ArticleEvent)]
    bad = [i for i in items if isinstance(i, InputError)]
    assert len(good) == 1 and len(bad) == 1
    assert good[0].source == "Auto Wire"
    assert good[0].text == "Acme Corp and Beta Inc are in talks on a venture."
    assert good[0].published_at.month == 3
    assert bad[0].reason == "missing_text"


def test_atom_entry():
    [item] = parse_document(ATOM, name="atom.xml", default_source="x")
    assert isinstance(item, ArticleEvent)
    assert item.url == "https://news.example.com/e1" and "signed" in item.text


def test_xml_entity_bomb_is_refused():
    bomb = b"""<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">
    <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
    <rss><channel><item><title>&c;</title><description>&c;</description></item></channel></rss>"""
    [item] = parse_document(bomb, name="bomb.xml", default_source="x")
    assert isinstance(item, InputError) and item.reason == "xml_forbidden"


def test_malformed_xml_feed():
    [item] = parse_document(b"<rss><channel><item>", name="bad.xml", default_source="x")
    assert isinstance(item, InputError) and item.reason == "invalid_xml"


def test_json_array_single_object_and_plain_text():
    arr = json.dumps([GOOD, {"id": "n", "text": ""}]).encode()
    kinds = [type(i).__name__ for i in parse_document(arr, name="a", default_source="x")]
    assert kinds == ["ArticleEvent", "InputError"]
    pretty = json.dumps(GOOD, indent=2).encode()
    [one] = parse_document(pretty, name="one.json", default_source="x")
    assert isinstance(one, ArticleEvent)
    [txt] = parse_document(b"Acme and Beta formed a venture.", name="n.txt",
                           default_source="x")
    assert isinstance(txt, ArticleEvent) and txt.article_id.startswith("sha-")


def test_non_utf8_input():
    [item] = parse_document(b"\xff\xfe\x00bad", name="b", default_source="x")
    assert isinstance(item, InputError) and item.reason == "not_utf8"


def test_clean_text_removes_template_debris_and_joins_wire_lines():
    raw = ("0 CommentsNissan and Honda may partner. {{^adFree}} {{/adFree}}\n\n"
           "Nissan is contemplating a\ncollaboration with Honda &amp; others.\n\n"
           "(With inputs from Reuters)\n")
    assert clean_text(raw) == ("Nissan and Honda may partner.\n\nNissan is contemplating a "
                               "collaboration with Honda & others.")
