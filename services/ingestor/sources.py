"""Items of what users hand in (JSON objects, JSON Lines, RSS/Atom entries) -> ArticleEvents.

`article_from_mapping` is the one mapper from a JSON-shaped item to an `ArticleEvent`: the
ingestor's every door and the offline `radar extract` / `radar eval` use it. Which parser
a whole document needs is decided above this module, in `documents.py`.

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
from shared.contracts import MAX_TITLE_CHARS, ArticleEvent, stable_hash, utcnow


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
    """A date from ISO 8601, RFC 2822 or epoch seconds; None when it is none of those."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, (int, float)):
            dt = datetime.fromtimestamp(value, UTC)
        else:
            text = str(value).strip()[:100]
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                dt = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, OSError, IndexError):
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


def article_from_mapping(item: Any, *, where: str, default_source: str,
                         as_given: bool = False) -> Parsed:
    """One JSON object shaped like {"id"|"article_id", "title", "text", "published_at",
    "source", "url"} (extra keys ignored) -> ArticleEvent. `as_given` keeps text and title
    uncleaned (offline extraction and scoring: gold evidence offsets point into the text as
    it was labelled)."""
    if not isinstance(item, dict):
        return InputError(where, "not_an_object", f"expected a JSON object, got "
                          f"{type(item).__name__}")
    clean = (lambda value: value) if as_given else clean_text
    text = clean(str(item.get("text") or item.get("body") or ""))
    title = _shorten(clean(str(item.get("title") or "")), MAX_TITLE_CHARS)
    if not text.strip():
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
            language=_language_tag(item.get("language")),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return InputError(where, "invalid_article", f"{field}: {err['msg']}")


def _shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def _language_tag(value: Any) -> str:
    """A declared language as ISO 639-1 (`en-US` -> `en`); empty when none was declared (the
    ingestor detects it)."""
    if not isinstance(value, str):
        return ""
    tag = value.replace("_", "-").split("-")[0].strip().lower()
    return tag if len(tag) == 2 and tag.isascii() and tag.isalpha() else ""


def parse_jsonl(lines: Iterable[str], *, name: str, default_source: str,
                as_given: bool = False) -> Iterator[Parsed]:
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
        except RecursionError:
            yield InputError(where, "invalid_json", "malformed JSON: nested too deeply")
            continue
        yield article_from_mapping(item, where=where, default_source=default_source,
                                   as_given=as_given)


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
    feed = feedparser.parse(document, sanitize_html=False, resolve_relative_uris=False)
    source = feed.feed.get("title") or default_source
    language = feed.feed.get("language")
    if not feed.entries:
        yield InputError(name, "empty_feed", "feed has no entries")
        return
    for number, entry in enumerate(feed.entries, start=1):
        content = ""
        if entry.get("content"):
            content = " ".join(c.get("value", "") for c in entry.content)
        body = strip_html(content or entry.get("summary") or entry.get("description") or "")
        yield article_from_mapping(
            {"title": strip_html(entry.get("title", "")), "text": body,
             "published_at": _entry_time(entry), "url": entry.get("link"),
             "guid": entry.get("id") or entry.get("guid"), "source": source,
             "language": language},
            where=f"{name}#item{number}", default_source=source)


def _entry_time(entry: Any) -> datetime | str | None:
    """feedparser's normalised UTC struct_time (RSS 0.9x/1.0/2.0 and Atom), else the raw."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime(*parsed[:6], tzinfo=UTC)
    return entry.get("published") or entry.get("updated") or entry.get("dc_date") or None
