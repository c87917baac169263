"""The Reuters-21578 SGML form (`reut2-NNN.sgm`): a common research archive of 1987 wire news.

Each `<REUTERS ... LEWISSPLIT="TRAIN" NEWID="1">` document carries a `DATE`
(`26-FEB-1987 15:01:01.79`), a `TITLE` and a `BODY`; its id becomes `reuters-<NEWID>`. The
split is decided on the document's attributes alone, before any of its text is touched, so
documents of a split not asked for (by default everything but TRAIN: TEST and NOT-USED are
reserved for held-out work) are skipped unread. Documents without a body (the archive's
title-only briefs and unprocessed items) or with an unreadable date become `InputError`s,
like any other bad item.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from services.ingestor.sources import InputError, Parsed, article_from_mapping

SPLITS = ("TRAIN", "TEST", "NOT-USED")
DEFAULT_SPLITS = frozenset({"TRAIN"})
SUFFIXES = (".sgm", ".sgml")
SOURCE = "Reuters"

_DOC = re.compile(rb"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_ATTR = re.compile(rb'([A-Z]+)="([^"]*)"')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SIGNATURE = re.compile(r"\s*\bReuter\s*$", re.I)
# (the archive's own noise: doubled spaces, and desk codes after the fraction: `.13RM`, `.18M C F`)
_DATE = re.compile(r"^\s*(\d{1,2})-([A-Z]{3})-(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
                   r"(?:\.\d*)?[A-Z\s]*$")
_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


def looks_like_reuters(data: bytes, name: str = "") -> bool:
    return name.lower().endswith(SUFFIXES) or b"<REUTERS " in data[:4096]


def parse_splits(values: Iterable[str]) -> frozenset[str]:
    """`train`, `test`, `not-used` (any case) -> the split names; ValueError for others."""
    chosen = frozenset(v.strip().upper() for v in values if v.strip())
    unknown = sorted(chosen - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown Reuters split(s) {', '.join(unknown)}; expected "
                         f"{', '.join(s.lower() for s in SPLITS)}")
    return chosen or DEFAULT_SPLITS


def reuters_time(raw: str) -> datetime | None:
    """`26-FEB-1987 15:01:01.79` -> 1987-02-26T15:01:01Z; None when it is not such a date."""
    match = _DATE.match(_CONTROL.sub("", raw))
    if not match or match.group(2) not in _MONTHS:
        return None
    day, year, hour, minute, second = (int(match.group(i)) for i in (1, 3, 4, 5, 6))
    try:
        return datetime(year, _MONTHS[match.group(2)], day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _element(document: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", document, re.S)
    return _CONTROL.sub("", html.unescape(match.group(1))).strip() if match else ""


def parse_reuters(data: bytes, *, name: str,
                  splits: frozenset[str] = DEFAULT_SPLITS) -> Iterator[Parsed]:
    """The documents of the chosen splits, in file order (the archive is Latin-1)."""
    for match in _DOC.finditer(data):
        attrs = {k.decode(): v.decode("latin-1") for k, v in _ATTR.findall(match.group(1))}
        if attrs.get("LEWISSPLIT") not in splits:
            continue  # decided on the attribute alone: its text is never read
        newid = attrs.get("NEWID", "").strip()
        where = f"{name}#NEWID={newid}"
        if not newid.isdigit():
            yield InputError(where, "invalid_article", f"NEWID {newid!r} is not a number")
            continue
        document = match.group(2).decode("latin-1")
        raw_date = _element(document, "DATE")
        published = reuters_time(raw_date)
        if published is None:
            yield InputError(where, "bad_published_at",
                             f"DATE {raw_date[:60]!r} is not a date like 26-FEB-1987 15:01:01")
            continue
        body = _SIGNATURE.sub("", _element(document, "BODY"))
        yield article_from_mapping(
            {"id": f"reuters-{newid}", "title": _element(document, "TITLE"), "text": body,
             "published_at": published, "source": SOURCE},
            where=where, default_source=SOURCE)
