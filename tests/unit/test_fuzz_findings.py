"""Regression tests, one per finding of the fuzzers (tests/integration/test_fuzz_*.py,
tests/unit/test_fuzz_doors.py), at the depth where each was fixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.aggregator.index import CompanyLink
from services.ingestor.dedup import SeenIndex
from services.ingestor.seen import apply_record
from services.ingestor.sources import InputError, article_from_mapping
from shared.contracts import (
    MAX_TITLE_CHARS,
    MAX_WORD_CHARS,
    ArticleEvent,
    DeadLetter,
    PartnershipEvent,
)
from shared.kafka import Rejected, dead_letter, decode

NOW = datetime(2024, 6, 1, tzinfo=UTC)
TEXT = "Kestrel Motor Corp and Vantor Energy Corp are in talks, the companies said."


# Finding: a 200 kB "word" (title or text) on news.articles.v1 held the extractor's
# partition for most of an hour (its cost grows with the square of a word's length) while
# /health stayed green. Fixed in the contract: such an article is a schema violation (the
# extractor dead-letters it at once); the ingestor shortens long titles and rejects the rest.
@pytest.mark.parametrize("field", ["title", "text"])
def test_giant_words_are_no_article(field: str) -> None:
    giant = "y" * (MAX_WORD_CHARS + 1)
    with pytest.raises(ValidationError, match=r"word longer than|at most 1000 characters"):
        ArticleEvent(article_id="a", published_at=NOW, **{"text": TEXT, field: giant})
    raw = json.dumps({"article_id": "a", "published_at": NOW.isoformat(), "text": TEXT,
                      field: giant}).encode()
    rejected = decode(ArticleEvent, raw)
    assert isinstance(rejected, Rejected) and rejected.reason == "schema_violation"
    ok = "y" * MAX_WORD_CHARS  # a long URL is one word: kept
    assert ArticleEvent(article_id="a", published_at=NOW, **{"text": TEXT, field: ok})


def test_ingestor_shortens_titles_and_rejects_giant_words() -> None:
    long_title = "Partnership " * 200
    item = article_from_mapping({"title": long_title, "text": TEXT}, where="x",
                                default_source="t")
    assert isinstance(item, ArticleEvent)
    assert len(item.title) <= MAX_TITLE_CHARS and item.title.endswith("…")
    giant = article_from_mapping({"text": TEXT + " " + "z" * 5000}, where="x:1",
                                 default_source="t")
    assert isinstance(giant, InputError) and giant.reason == "invalid_article"
    assert "word longer than" in giant.message


# Finding: a partnership record whose parties give no alliance id ("!!" and "??", or
# "Acme" and "ACME") decoded, then raised when keyed, outside the aggregator's error handling.
@pytest.mark.parametrize("parties", [["!!", "??"], ["Acme", "ACME"], ["Acme", "acme "]])
def test_parties_without_an_alliance_id_are_a_schema_violation(parties: list[str]) -> None:
    raw = json.dumps({"event_id": "e", "article_id": "a", "parties": parties,
                      "stage": "talks", "confidence": 0.5, "published_at": NOW.isoformat(),
                      "evidence": [{"sentence": "s", "start": 0, "end": 1}]}).encode()
    rejected = decode(PartnershipEvent, raw)
    assert isinstance(rejected, Rejected) and rejected.reason == "schema_violation"
    assert "two or more distinct parties" in rejected.error


# Finding: junk on the company-index topic was logged and dropped (no dead letter, no
# count), and a link naming a company without letters raised inside the index agent.
def test_company_links_without_a_key_are_a_schema_violation() -> None:
    raw = json.dumps({"company": "!!!", "alliance_id": "a+b", "parties": ["!!!", "B"],
                      "stage": "agreed", "episode": 1, "last_changed": NOW.isoformat(),
                      "source_offset": 1}).encode()
    rejected = decode(CompanyLink, raw)
    assert isinstance(rejected, Rejected) and rejected.reason == "schema_violation"


# Finding: bad records on news.seen.v1 were counted as `invalid` without saying why.
@pytest.mark.parametrize(("value", "reason"), [(b"{nope", "invalid_json"),
                                               (b'{"article_id": ""}', "schema_violation")])
def test_seen_records_counted_with_their_reason(value: bytes, reason: str) -> None:
    from datetime import timedelta

    record = ConsumerRecord("news.seen.v1", 0, 7, 0, 0, b"k", value, None, 0, len(value), [])
    assert apply_record(SeenIndex(timedelta(hours=1)), record, NOW) == reason


# Finding: a 950 kB record on an input topic gave a dead letter over the broker's 1 MB
# message limit (base64 grows it by a third); the failed send stopped the ingestor.
def test_dead_letters_stay_under_the_message_limit() -> None:
    from shared.kafka import MAX_DEAD_LETTER_BYTES

    small = b"x" * 1000
    record = ConsumerRecord("t", 0, 1, 0, 0, b"k", small, None, 0, len(small), [])
    letter = dead_letter("svc", record, Rejected("invalid_json", "bad"))
    assert DeadLetter.model_validate_json(letter.to_bytes()).record_value == small
    assert letter.error == "bad"
    huge = bytes(range(256)) * 4000  # 1,024,000 bytes
    record = ConsumerRecord("t", 0, 2, 0, 0, b"k", huge, None, 0, len(huge), [])
    letter = dead_letter("svc", record, Rejected("invalid_json", "bad"))
    assert len(letter.to_bytes()) < 1_000_000
    assert letter.record_value == huge[:MAX_DEAD_LETTER_BYTES]
    assert letter.error == f"bad [record value cut to its first {MAX_DEAD_LETTER_BYTES} of " \
        f"{len(huge)} bytes]"


# Finding: a JSON Lines body whose first line was junk that looks like HTML was read as a
# web page, and the good lines after it were lost.
def test_jsonl_after_an_html_looking_line_is_jsonl() -> None:
    from services.ingestor.documents import parse_document

    good = json.dumps({"id": "kept", "text": TEXT})
    items = list(parse_document(f"<html><body><div>\n{good}".encode(), name="body",
                                default_source="t"))
    assert [i.article_id for i in items if isinstance(i, ArticleEvent)] == ["kept"]
    assert isinstance(items[0], InputError) and items[0].reason == "invalid_json"
