"""The ingestor's cheaper language detection and MinHash decide exactly as the library code
they replace, on the news the benchmark feeds (Reuters TRAIN when the corpus is there, else
the generated mix) plus the committed TRAIN sample, with copies and near copies mixed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash
from py3langid.langid import MODEL_FILE, LanguageIdentifier, visit_counts

from bench.corpus import news_mix
from services.ingestor import dedup, language
from services.ingestor.dedup import NUM_PERM, SEED, SHINGLE_WORDS, words
from services.ingestor.publish import Judge
from services.ingestor.sources import Parsed, article_from_mapping
from shared.contracts import ArticleEvent

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "reuters_train" / "articles.jsonl"
OTHER_LANGUAGES = [
    "Volkswagen und Ford haben am Donnerstag eine Vereinbarung über den gemeinsamen Bau "
    "von Elektrotransportern unterzeichnet, teilten die Unternehmen mit.",
    "Renault et Nissan ont annoncé jeudi un nouvel accord de coopération sur les batteries.",
    "トヨタ自動車とマツダは水素エンジンの共同開発について協議している。",
    "Газпром и Роснефть подписали соглашение о совместной разработке месторождения.",
    "", "a", "ab", "ACME AND BETA FORMED A VENTURE", "12 34 56 78",
]


def reference_signature(text: str, min_words: int) -> LeanMinHash | None:
    """The signature as datasketch computes it (the ingestor's code before it was
    vectorised)."""
    tokens = words(text)
    if len(tokens) < max(min_words, SHINGLE_WORDS):
        return None
    shingles = {" ".join(tokens[i:i + SHINGLE_WORDS]).encode()
                for i in range(len(tokens) - SHINGLE_WORDS + 1)}
    mh = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=dedup._permutations(),
                 scheme="affine32")
    mh.update_batch(list(shingles))
    return LeanMinHash(mh)


@pytest.fixture(scope="module")
def reference() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@pytest.fixture(scope="module")
def fast() -> language.VectorIdentifier:
    return language.VectorIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@pytest.fixture(scope="module")
def articles() -> list[ArticleEvent]:
    mix, _ = news_mix(300, seed=1987)
    items = [{"id": a.id, "title": a.title, "text": a.text,
              "published_at": a.published_at} for a in mix]
    items += [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    out = [article_from_mapping(item, where="test", default_source="Reuters") for item in items]
    return [a for a in out if isinstance(a, ArticleEvent)]


def test_vector_identifier_detects_exactly_as_py3langid(
        articles: list[ArticleEvent], reference: LanguageIdentifier,
        fast: language.VectorIdentifier) -> None:
    assert fast.depth == 6  # the bundled model's deepest state (a new model may differ)
    texts = [f"{a.title}\n\n{a.text}"[:language.SAMPLE_CHARS] for a in articles]
    texts += OTHER_LANGUAGES + [t * 40 for t in OTHER_LANGUAGES]
    assert len(texts) > 500
    differing = [t[:60] for t in texts if fast.classify(t) != reference.classify(t)]
    assert differing == []  # language and confidence, to the last bit


def test_vector_identifier_finds_the_features_of_the_byte_walk(
        fast: language.VectorIdentifier) -> None:
    for text in OTHER_LANGUAGES[:4]:
        data = fast._encode(text)
        expected = visit_counts(fast.tk_nextmove, fast._rowbase, fast.tk_output, data)
        found = fast.features(data).tolist()
        assert list(expected.items()) == [(f, found.count(f)) for f in dict.fromkeys(found)]


def test_numpy_minhash_equals_datasketch(articles: list[ArticleEvent]) -> None:
    compared = 0
    for article in articles:
        for text in (article.text, article.text.upper() + " Москва 東京"):
            ours, theirs = dedup.signature(text, 20), reference_signature(text, 20)
            assert (ours is None) == (theirs is None)
            if ours is not None and theirs is not None:
                assert np.array_equal(ours.hashvalues, theirs.hashvalues)
                assert ours.hashvalues.dtype == theirs.hashvalues.dtype
                compared += 1
    assert compared > 700


def near_copy(article: ArticleEvent, n: int) -> ArticleEvent:
    """A syndicated copy: another id and headline, a dateline and a footer."""
    return article.model_copy(update={
        "article_id": f"{article.article_id}-syndicated-{n}", "url": None,
        "title": f"UPDATE 1-{article.title}",
        "text": f"LONDON (Reuters) - {article.text}\n\nReporting by the wire desk."})


def decisions(items: list[Parsed]) -> list[tuple[str, str | None, str | None]]:
    judge = Judge(dedup.SeenIndex(timedelta(hours=48), 0.8), language.LanguagePolicy(),
                  clock=lambda: datetime(2026, 12, 3, tzinfo=UTC))
    out = []
    for item in items:
        result = judge.decide(item).result
        out.append((result.status, result.duplicate_of, result.language))
    return out


def test_judge_decides_as_before_on_the_bench_mix(articles: list[ArticleEvent],
                                                  reference: LanguageIdentifier,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    stream: list[Parsed] = []
    for n, article in enumerate(articles):
        stream.append(article)
        if n % 7 == 0:
            stream.append(near_copy(article, n))
        if n % 11 == 0:
            stream.append(article.model_copy(update={"article_id": f"{article.article_id}-again"}))
        if n % 50 == 0:
            text = OTHER_LANGUAGES[n // 50 % 4] * 3
            stream.append(article.model_copy(update={"article_id": f"foreign-{n}", "title": "",
                                                     "text": text}))
    now = decisions(stream)
    statuses = {status for status, _, _ in now}
    assert {"published", "duplicate", "near_duplicate", "non_english"} <= statuses

    monkeypatch.setattr(language, "_identifier", lambda: reference)
    monkeypatch.setattr(dedup, "signature", reference_signature)
    assert decisions(stream) == now
