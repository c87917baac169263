"""Identity and dedup without Kafka: exact keys, MinHash near-duplicates, the window, the
seen record round trip, and the Judge (language + dedup) in front of publishing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.ingestor.dedup import (
    SCHEME,
    Fingerprint,
    Outcome,
    SeenIndex,
    canonical_url,
    exact_keys,
)
from services.ingestor.language import LanguagePolicy
from services.ingestor.publish import Judge, summary
from services.ingestor.sources import InputError, article_from_mapping
from shared.contracts import ArticleEvent, SeenArticle

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
STORY = (
    "TOKYO, Jan 9 (Radar Wire) - Nissan Motor Co and Honda Motor Co are exploring a possible "
    "partnership in electric vehicle software and batteries, three people familiar with the "
    "matter said on Tuesday. Nissan and Honda may partner on a shared EV platform, but no "
    "formal talks are under way, the sources said, asking not to be named because the "
    "discussions are private. A Honda spokesperson declined to comment on what he called "
    "market speculation. Nissan said it regularly reviews options to strengthen its "
    "competitiveness. Japanese automakers are under growing pressure from lower-cost Chinese "
    "rivals in the fast-expanding EV market.")
# The same story as another outlet syndicates it: its own dateline credit and a footer.
SYNDICATED = STORY.replace("(Radar Wire)", "(Example Daily)") + \
    " Example Daily is a unit of Example Media."


def article(article_id: str, text: str = STORY, url: str | None = None,
            title: str = "Nissan weighs Honda tie-up") -> ArticleEvent:
    return ArticleEvent(article_id=article_id, text=text, url=url, title=title,
                        published_at=T0, language="en")


def fp(a: ArticleEvent) -> Fingerprint:
    return Fingerprint.of(a, min_words=20)


def demo_articles() -> list[ArticleEvent]:
    lines = (ROOT / "services/cli/samples/demo_articles.jsonl").read_text().splitlines()
    return [article(f"demo-{i}", json.loads(line)["text"]) for i, line in enumerate(lines)]


def test_canonical_url_drops_tracking_fragment_case_and_trailing_slash() -> None:
    assert canonical_url("HTTPS://News.Example.COM:443/a/b/?utm_source=rss&b=2&a=1#top") == \
        "https://news.example.com/a/b?a=1&b=2"
    assert canonical_url("http://x.example.com:8080/p?fbclid=1") == "http://x.example.com:8080/p"


def test_exact_duplicates_by_id_url_or_text() -> None:
    index = SeenIndex(timedelta(hours=72))
    first = article("a1", url="https://news.example.com/s?utm_medium=email")
    index.add(fp(first), T0)
    same_id = article("a1", text="Completely different text, with the same id, for sure here.")
    same_url = article("other-id", text="Different words entirely about other matters, yes.",
                       url="https://NEWS.example.com/s/")
    same_text = article("third-id", text=STORY.replace("  ", " ").upper(), title="Other title")
    for candidate in (same_id, same_url, same_text):
        match = index.check(fp(candidate), T0 + timedelta(hours=1))
        assert match is not None and (match.outcome, match.of) == (Outcome.DUPLICATE, "a1")
    assert len(exact_keys(first)) == 3


def test_syndicated_copy_is_a_near_duplicate_but_other_stories_are_not() -> None:
    index = SeenIndex(timedelta(hours=72), threshold=0.8)
    index.add(fp(article("original")), T0)
    match = index.check(fp(article("copy", SYNDICATED, title="Honda, Nissan mull deal")), T0)
    assert match is not None and match.outcome is Outcome.NEAR_DUPLICATE
    assert match.of == "original" and 0.8 <= match.similarity < 1.0
    # 16 distinct demo stories, several about the same companies: none is flagged.
    demos = SeenIndex(timedelta(hours=72), threshold=0.8)
    for a in demo_articles():
        assert demos.check(fp(a), T0) is None, a.article_id
        demos.add(fp(a), T0)
    assert len(demos) == 16


def test_short_texts_are_checked_for_exact_duplicates_only() -> None:
    index = SeenIndex(timedelta(hours=72))
    short = "Alpha0 Motors Corp and Beta0 Energy Inc may team up on batteries, the companies said."
    index.add(fp(article("s0", short)), T0)
    other = short.replace("Alpha0", "Alpha1").replace("Beta0", "Beta1")
    assert fp(article("s1", other)).minhash is None
    assert index.check(fp(article("s1", other)), T0) is None


def test_window_expiry_and_disabled_window() -> None:
    index = SeenIndex(timedelta(hours=2))
    index.add(fp(article("a1")), T0)
    assert index.check(fp(article("a2")), T0 + timedelta(hours=1)) is not None
    assert index.check(fp(article("a2")), T0 + timedelta(hours=3)) is None  # stale entry
    assert list(index.expire(T0 + timedelta(hours=1))) == []
    assert list(index.expire(T0 + timedelta(hours=3))) == ["a1"]
    assert len(index) == 0
    off = SeenIndex(timedelta(0))
    off.add(fp(article("a1")), T0)
    assert off.check(fp(article("a1")), T0) is None and len(off) == 0


def test_readding_an_id_replaces_the_old_entry() -> None:
    index = SeenIndex(timedelta(hours=72))
    index.add(fp(article("a1")), T0)
    index.add(fp(article("a1")), T0)  # our own record coming back: no change
    index.add(fp(article("a1", SYNDICATED)), T0 + timedelta(hours=1))
    assert len(index) == 1
    assert list(index.expire(T0 + timedelta(hours=72, minutes=30))) == []
    assert list(index.expire(T0 + timedelta(hours=73, minutes=30))) == ["a1"]


def test_seen_record_round_trips_through_json() -> None:
    original = fp(article("a1", url="https://news.example.com/x"))
    record = original.record("Radar Wire", T0)
    again = SeenArticle.from_bytes(record.to_bytes())
    assert again.minhash_scheme == SCHEME and again.key() == b"a1"
    assert Fingerprint.from_record(again) == original  # type: ignore[arg-type]
    foreign = again.model_copy(update={"minhash_scheme": "w3-p64-s7"})
    assert Fingerprint.from_record(foreign).minhash is None  # other scheme: exact keys only


# ------------------------------------------------------------------ the judge


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def judge(**kw: object) -> Judge:
    return Judge(SeenIndex(timedelta(hours=72)), LanguagePolicy(), clock=Clock(), **kw)


GERMAN = ("Volkswagen und Ford haben am Donnerstag eine Vereinbarung über den gemeinsamen Bau "
          "von Elektrotransportern unterzeichnet, teilten die Unternehmen mit.")


def test_judge_outcomes_in_one_batch() -> None:
    j = judge()
    items = [
        article_from_mapping({"id": "n1", "text": STORY}, where="b:1", default_source="t"),
        InputError("b:2", "invalid_json", "malformed JSON"),
        article_from_mapping({"id": "n1", "text": STORY}, where="b:3", default_source="t"),
        article_from_mapping({"id": "n2", "text": SYNDICATED}, where="b:4", default_source="t"),
        article_from_mapping({"id": "n3", "text": GERMAN}, where="b:5", default_source="t"),
    ]
    verdicts = [j.decide(i) for i in items]
    statuses = [v.result.status for v in verdicts]
    assert statuses == ["published", "rejected", "duplicate", "near_duplicate", "non_english"]
    assert verdicts[0].article is not None and verdicts[0].article.language == "en"
    assert verdicts[0].seen is not None and verdicts[0].seen.article_id == "n1"
    assert verdicts[4].result.language == "de"
    assert summary([v.result for v in verdicts]) == {
        "accepted": 4, "rejected": 1, "published": 1, "duplicate": 1, "near_duplicate": 1,
        "non_english": 1}


def test_forget_undoes_a_failed_publish() -> None:
    j = judge()
    verdict = j.decide(article("n1"))
    j.forget([verdict])
    assert j.decide(article("n1")).result.status == "published"


@pytest.mark.parametrize("languages", [None, frozenset({"de", "en"})])
def test_other_languages_pass_when_configured(languages: frozenset[str] | None) -> None:
    j = Judge(SeenIndex(timedelta(hours=72)), LanguagePolicy(languages), clock=Clock())
    assert j.decide(article("g", GERMAN)).result.status == "published"
