"""Which request bodies the ingestor parses on its event loop, and that both ways agree."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from services.ingestor import documents
from services.ingestor.documents import INLINE_PARSE_BYTES, parse_off_loop, parses_inline

ARTICLE = {"id": "a-1", "title": "Acme and Bolt form venture",
           "text": "Acme Corp and Bolt Inc said on Monday they formed a joint venture. " * 8,
           "source": "wire"}


def test_small_json_bodies_parse_inline_and_the_rest_does_not() -> None:
    one = json.dumps(ARTICLE).encode()
    assert parses_inline(one)
    assert parses_inline(b"  [" + one + b"]")
    assert not parses_inline(b"<html><body>" + one + b"</body></html>")
    assert not parses_inline(b"Plain prose about a venture.")
    big = b"\n".join([one] * (INLINE_PARSE_BYTES // len(one) + 1))
    assert not parses_inline(big)


def _spy_threads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = asyncio.to_thread

    async def to_thread(func: Any, *args: Any) -> Any:
        calls.append(func)
        return await real(func, *args)

    monkeypatch.setattr(documents.asyncio, "to_thread", to_thread)
    return calls


def test_one_article_skips_the_thread_and_gives_what_the_thread_gives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_threads(monkeypatch)
    one = json.dumps(ARTICLE).encode()
    inline = asyncio.run(parse_off_loop(one, name="body", default_source="http"))
    assert calls == []
    big = b"\n".join([one] * (INLINE_PARSE_BYTES // len(one) + 1))
    threaded = asyncio.run(parse_off_loop(big, name="body", default_source="http"))
    assert len(calls) == 1

    def same(item: Any) -> dict[str, Any]:  # intake (and default publication) times differ
        return item.model_dump(exclude={"fetched_at", "published_at"})

    assert [same(i) for i in inline] == [same(threaded[0])]
    assert inline[0].title == ARTICLE["title"]


def test_a_bad_small_body_is_still_an_input_error_not_a_crash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_threads(monkeypatch)
    (error,) = asyncio.run(parse_off_loop(b'{"title": ', name="body", default_source="http"))
    assert calls == [] and error.reason == "invalid_json"
