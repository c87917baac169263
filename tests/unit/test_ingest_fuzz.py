"""Fuzzing the file path (parse -> judge): whatever the bytes, no exception escapes, and a
valid article beside junk in the same document or folder is never lost."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingestor.dedup import SeenIndex
from services.ingestor.documents import parse_document, read_documents
from services.ingestor.language import LanguagePolicy
from services.ingestor.publish import Judge
from services.ingestor.sources import InputError
from shared.contracts import ArticleEvent

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NAMES = ["Acme", "Beta", "Gamma", "Delta", "Orion", "Castellan", "Northwind", "Meridian"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
# Objects shaped almost like articles: right keys, wrong or odd values.
near_articles = st.fixed_dictionaries({}, optional={
    "id": json_values, "article_id": json_values, "text": json_values, "title": json_values,
    "published_at": json_values | st.sampled_from(["2024-02-30", "yesterday", "1e999", ""]),
    "url": json_values, "source": json_values, "language": json_values})
junk_lines = st.one_of(
    st.text(max_size=200).map(lambda s: s.replace("\n", " ").replace("\r", " ")),
    json_values.map(json.dumps), near_articles.map(json.dumps),
    st.sampled_from(['{"id": "x", "text": ', "<rss><channel>", "[1,2", "\x00\x01", "{}",
                     '{"text": "  "}', '"just a string"']))


@st.composite
def valid_articles(draw: st.DrawFn, prefix: str) -> list[dict]:
    count = draw(st.integers(1, 3))
    return [{"id": f"{prefix}-{i}", "published_at": "2024-06-01T00:00:00Z",
             "text": f"{draw(st.sampled_from(NAMES))} Corp and {draw(st.sampled_from(NAMES))} "
                     f"Inc agreed on step {i} of a battery venture, the companies said."}
            for i in range(count)]


def judge() -> Judge:
    return Judge(SeenIndex(timedelta(hours=72)), LanguagePolicy())


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes_parse_to_items_or_errors(data: bytes) -> None:
    for name in ("body", "x.html", "x.xml"):
        items = list(parse_document(data, name=name, default_source="fuzz"))
        assert all(isinstance(i, (ArticleEvent, InputError)) for i in items)
        verdicts = [judge().decide(i) for i in items]
        assert len(verdicts) == len(items)


@FAST
@given(valid_articles("jl"), st.lists(junk_lines, max_size=8), st.randoms())
def test_jsonl_batch_keeps_every_valid_article(good: list[dict], junk: list[str],
                                               rnd: object) -> None:
    lines = [json.dumps(g) for g in good] + junk
    rnd.shuffle(lines)  # type: ignore[attr-defined]
    items = list(parse_document("\n".join(lines).encode(), name="b", default_source="f"))
    j = judge()
    published = {v.article.article_id for v in map(j.decide, items) if v.article is not None}
    assert {g["id"] for g in good} <= published


@FAST
@given(valid_articles("arr"), st.lists(near_articles | json_values, max_size=6))
def test_json_array_batch_keeps_every_valid_article(good: list[dict], junk: list) -> None:
    doc = json.dumps(junk[:3] + good + junk[3:]).encode()
    items = list(parse_document(doc, name="a", default_source="f"))
    assert len(items) == len(good) + len(junk)
    ids = {i.article_id for i in items if isinstance(i, ArticleEvent)}
    assert {g["id"] for g in good} <= ids


@FAST
@given(st.lists(st.tuples(st.sampled_from([".jsonl", ".json", ".xml", ".html", ".txt"]),
                          st.binary(max_size=500)), max_size=4),
       valid_articles("dir"))
def test_folder_with_junk_files_keeps_the_valid_file(tmp_path_factory, junk_files: list,
                                                     good: list[dict]) -> None:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    for n, (suffix, data) in enumerate(junk_files):
        (folder / f"junk{n}{suffix}").write_bytes(data)
    (folder / "good.jsonl").write_text("\n".join(json.dumps(g) for g in good))
    documents = read_documents(str(folder))
    assert documents is not None and len(documents) == len(junk_files) + 1
    j = judge()
    published = set()
    for name, data in documents:
        for item in parse_document(data, name=name, default_source=name):
            verdict = j.decide(item)
            if verdict.article is not None:
                published.add(verdict.article.article_id)
    assert {g["id"] for g in good} <= published
