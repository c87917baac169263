"""A web page -> the article on it (trafilatura drops navigation, ads, share bars, footers).

lxml's HTML parser does not expand DTD entities, and the tree size is capped, so a hostile
page costs at most one bounded parse.
"""

from __future__ import annotations

import logging
from configparser import ConfigParser
from functools import cache

from services.ingestor.clean import clean_text
from services.ingestor.sources import InputError, Parsed, article_from_mapping

log = logging.getLogger(__name__)
MAX_TREE_SIZE = 200_000  # elements; beyond this a "page" is an attack or not an article
MIN_WORDS = 10  # fewer is a menu or an error page, not an article
HTML_SUFFIXES = (".html", ".htm", ".xhtml")


@cache
def _config() -> ConfigParser:
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MAX_TREE_SIZE", str(MAX_TREE_SIZE))
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")  # signal-based; we are not on the CLI
    return config


def looks_like_html(data: bytes, name: str = "") -> bool:
    if name.lower().endswith(HTML_SUFFIXES):
        return True
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or (
        head.startswith(b"<?xml") and b"<html" in head)


def extract_page(data: bytes, *, name: str, default_source: str,
                 url: str | None = None) -> Parsed:
    """Main text, title, date and site name of one page; an InputError when it has none."""
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            data, url=url, with_metadata=True, include_comments=False, include_tables=False,
            favor_precision=True, deduplicate=False, config=_config())
    except (ValueError, TypeError, RecursionError) as exc:
        log.warning("page %s: extraction failed: %r", name, exc)
        return InputError(name, "invalid_html", f"cannot read the page: {exc}")
    if doc is None or len((doc.text or "").split()) < MIN_WORDS:
        return InputError(name, "no_article_text", "no article text found on the page")
    title = clean_text(doc.title or "")
    # trafilatura separates paragraphs with one newline; clean_text joins single newlines
    # (wire-copy rule), so mark them as paragraphs first. Drop the headline repeated as body.
    paragraphs = [p for p in doc.text.split("\n") if p.strip()]
    if paragraphs and title and clean_text(paragraphs[0]) == title:
        paragraphs = paragraphs[1:]
    return article_from_mapping(
        {"title": title, "text": "\n\n".join(paragraphs), "published_at": doc.date,
         "url": url or doc.url, "source": doc.sitename or doc.hostname or default_source,
         "language": doc.language},
        where=name, default_source=default_source)
