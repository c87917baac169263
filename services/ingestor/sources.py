"""Turn what users hand in (JSONL lines, JSON objects, RSS/Atom documents) into ArticleEvents.

Pure functions: every input yields either an ArticleEvent or an `InputError` saying what is
wrong and where, never an exception, so one bad item never costs the good ones beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from services.ingestor.clean import clean_text, strip_html
from shared.contracts import ArticleEvent, stable_hash, utcnow


@dataclass(frozen=True)
class InputError:
    """A rejected input item: where it was and why (reason is a metrics label)."""

    where: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


Parsed = ArticleEvent | InputError


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(value, UTC)
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                dt = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def article_id_for(*, given: str | None, guid: str | None, url: str | None, title: str,
                   text: str) -> str:
    """Stable id: the given id, else the feed guid, else the URL, else a content hash."""
    if given:
        return str(given).strip()
    if guid:
        return "guid-" + stable_hash(str(guid).strip())
    if url:
        return "url-" + stable_hash(str(url).strip().rstrip("/").lower())
    return "sha-" + stable_hash(title.strip().lower(), " ".join(text.split()).lower())


def article_from_mapping(item: Any, *, where: str, default_source: str) -> Parsed:
    """One JSON object shaped like {"id"|"article_id", "title", "text", "published_at",
    "source", "url"} (extra keys ignored) -> ArticleEvent."""
    if not isinstance(item, dict):
        return InputError(where, "not_an_object", f"expected a JSON object, got "
                          f"{type(item).__name__}")
    text = clean_text(str(item.get("text") or item.get("body") or ""))
    title = clean_text(str(item.get("title") or ""))
    if not text:
        return InputError(where, "missing_text", "article has no text")
    raw_published = item.get("published_at") or item.get("published") or item.get("date")
    published = parse_time(raw_published)
    if raw_published and published is None:
        return InputError(where, "bad_published_at",
                          f"published_at {str(raw_published)[:60]!r} is not a date")
    url = item.get("url") or item.get("link")
    try:
        return ArticleEvent(
            article_id=article_id_for(given=item.get("article_id") or item.get("id"),
                                      guid=item.get("guid"), url=url, title=title, text=text),
            url=str(url) if url else None,
            title=title,
            text=text,
            source=str(item.get("source") or default_source),
            published_at=published or utcnow(),
            language=str(item.get("language") or "en"),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return InputError(where, "invalid_article", f"{field}: {err['msg']}")


def parse_jsonl(lines: Iterable[str], *, name: str, default_source: str) -> Iterator[Parsed]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InputError(where, "invalid_json", f"malformed JSON: {exc.msg} at column "
                             f"{exc.colno}")
            continue
        yield article_from_mapping(item, where=where, default_source=default_source)


def looks_like_feed(head: bytes | str) -> bool:
    sample = head[:2048].lower() if isinstance(head, bytes) else head[:2048].lower().encode()
    return sample.lstrip().startswith(b"<") and any(
        tag in sample for tag in (b"<rss", b"<feed", b"<rdf:rdf", b"<channel"))


def parse_feed(document: bytes, *, name: str, default_source: str) -> Iterator[Parsed]:
    """RSS 0.9x/1.0/2.0 or Atom -> articles. Entity expansion is refused (defusedxml)."""
    import defusedxml.ElementTree as safe_xml
    import feedparser
    from defusedxml import DefusedXmlException

    try:
        safe_xml.fromstring(document)  # refuses entity bombs and external entities
    except DefusedXmlException as exc:
        yield InputError(name, "xml_forbidden", f"refused XML construct: {exc}")
        return
    except safe_xml.ParseError as exc:
        yield InputError(name, "invalid_xml", f"malformed XML: {exc}")
        return
    feed = feedparser.parse(document)
    source = feed.feed.get("title") or default_source
    if not feed.entries:
        yield InputError(name, "empty_feed", "feed has no entries")
        return
    for number, entry in enumerate(feed.entries, start=1):
        content = ""
        if entry.get("content"):
            content = " ".join(c.get("value", "") for c in entry.content)
        body = strip_html(content or entry.get("summary") or entry.get("description") or "")
        published = (entry.get("published") or entry.get("updated")
                     or entry.get("dc_date") or None)
        yield article_from_mapping(
            {"title": strip_html(entry.get("title", "")), "text": body,
             "published_at": published, "url": entry.get("link"),
             "guid": entry.get("id") or entry.get("guid"), "source": source},
            where=f"{name}#item{number}", default_source=source)


def parse_document(data: bytes, *, name: str, default_source: str) -> Iterator[Parsed]:
    """A whole input: a feed, JSONL, a JSON array/object, or plain text."""
    if looks_like_feed(data):
        yield from parse_feed(data, name=name, default_source=default_source)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield InputError(name, "not_utf8", f"input is not UTF-8: {exc.reason} at byte "
                         f"{exc.start}")
        return
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            yield InputError(name, "invalid_json", f"malformed JSON array: {exc.msg} at line "
                             f"{exc.lineno}")
            return
        for i, item in enumerate(items, start=1):
            yield article_from_mapping(item, where=f"{name}[{i}]",
                                       default_source=default_source)
        return
    if stripped.startswith("{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # JSON Lines, judged line by line
        if isinstance(whole, dict):
            yield article_from_mapping(whole, where=name, default_source=default_source)
            return
        yield from parse_jsonl(text.splitlines(), name=name, default_source=default_source)
        return
    yield article_from_mapping({"text": text, "title": name}, where=name,
                               default_source=default_source)
