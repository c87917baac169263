"""One document in, its items out: the dispatcher above the parsers. It decides whether a
document is a web page (`pages.py`), a feed, a JSON array or object, JSON Lines, or plain
text (`sources.py`), and runs that parser. Every door of the ingestor (HTTP, folder, feeds,
inbox, `radar ingest`) hands its documents here.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from services.ingestor.pages import HTML_SUFFIXES, extract_page, looks_like_html
from services.ingestor.sources import (
    InputError,
    Parsed,
    article_from_mapping,
    looks_like_feed,
    parse_feed,
    parse_jsonl,
)

#: Files a watched folder or `radar ingest FOLDER` takes (others are left alone).
FOLDER_SUFFIXES = (".jsonl", ".json", ".xml", ".rss", ".atom", ".rdf", ".txt", *HTML_SUFFIXES)
_JSON_OBJECT_LINE = re.compile(r'^\s*\{\s*"')


def _has_json_object_line(data: bytes) -> bool:
    text = data.decode("utf-8", errors="replace")
    return any(_JSON_OBJECT_LINE.match(line) for line in text.splitlines()[1:])


def parse_document(data: bytes, *, name: str, default_source: str,
                   url: str | None = None) -> Iterator[Parsed]:
    """A whole input: a feed, a web page, JSONL, a JSON array/object, or plain text."""
    data = data.removeprefix(codecs.BOM_UTF8)
    # (A JSONL batch whose first line is junk that looks like HTML or XML is still JSONL:
    # found by fuzzing, the page reading lost the good lines after it.)
    if looks_like_html(data, name) and (name.lower().endswith(HTML_SUFFIXES)
                                        or not _has_json_object_line(data)):
        yield extract_page(data, name=name, default_source=default_source, url=url)
        return
    if looks_like_feed(data) and not _has_json_object_line(data):
        yield from parse_feed(data, name=name, default_source=default_source)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield InputError(name, "not_utf8", f"input is not UTF-8: {exc.reason} at byte "
                         f"{exc.start}")
        return
    stripped = text.lstrip()
    # JSON Lines when any line opens a JSON object, even if the first line is junk; a .txt
    # file is always prose ("{{^adFree}}" debris must not make it JSON).
    jsonl = not name.lower().endswith(".txt") and any(
        _JSON_OBJECT_LINE.match(line) for line in text.splitlines())
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            if jsonl and len(text.strip().splitlines()) > 1:
                yield from parse_jsonl(text.splitlines(), name=name,
                                       default_source=default_source)
                return
            message = f"{exc.msg} at line {exc.lineno}" if isinstance(
                exc, json.JSONDecodeError) else "nested too deeply"
            yield InputError(name, "invalid_json", f"malformed JSON array: {message}")
            return
        if not isinstance(items, list):
            items = [items]
        for i, item in enumerate(items, start=1):
            yield article_from_mapping(item, where=f"{name}[{i}]",
                                       default_source=default_source)
        return
    if stripped.startswith("{") or jsonl:
        try:
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None  # JSON Lines, judged line by line
        if isinstance(whole, dict):
            yield article_from_mapping(whole, where=name, default_source=default_source)
            return
        yield from parse_jsonl(text.splitlines(), name=name, default_source=default_source)
        return
    yield article_from_mapping({"text": text, "title": name}, where=name,
                               default_source=default_source)


#: A JSON body up to this size is parsed on the event loop: one article (3 kB on average
#: on the wire) parses in about 0.1 ms, less than the hop to a worker thread and back costs
#: (a thread wake-up, the loop's self-pipe, the GIL handed over twice), which every
#: one-article request paid. Pages, feeds, text and bigger bodies still go to a thread.
INLINE_PARSE_BYTES = 16 * 1024


def parses_inline(data: bytes) -> bool:
    """Small enough and JSON (an object or an array): cheap to parse on the event loop."""
    return len(data) <= INLINE_PARSE_BYTES and data.lstrip()[:1] in (b"{", b"[")


async def parse_off_loop(data: bytes, *, name: str, default_source: str,
                         url: str | None = None) -> list[Parsed]:
    """`parse_document` (pure, and slow for big bodies or pages) in a worker thread, so the
    event loop keeps serving /health and Kafka heartbeats; a small JSON body at once."""
    def parse() -> list[Parsed]:
        return list(parse_document(data, name=name, default_source=default_source, url=url))

    if parses_inline(data.removeprefix(codecs.BOM_UTF8)):
        return parse()
    return await asyncio.to_thread(parse)


def read_documents(target: str) -> list[tuple[str, bytes]] | None:
    """(name, bytes) of stdin (`-`), a file, or a folder's files with known suffixes; None
    when the path does not exist."""
    if target == "-":
        return [("stdin", sys.stdin.buffer.read())]
    path = Path(target)
    if not path.exists():
        return None
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
    else:
        files = [path]
    return [(p.name, p.read_bytes()) for p in files]
