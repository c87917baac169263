"""Clean article text once, at the front door, so every consumer sees the same text.

Evidence offsets downstream point into this cleaned text.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TEMPLATE = re.compile(r"\{\{[^{}]{0,80}\}\}")  # {{^adFree}} {{/adFree}}
_DEBRIS_LINES = re.compile(
    r"^\s*(?:\d+\s+Comments?|Share(?: this)?(?: article)?(?: on \w+)?|Subscribe(?: now)?.*|"
    r"Read more:?.*|Advertisement|Follow us on .*|Sign up for .*newsletter.*)\s*$",
    re.I | re.M)
_LEADING_COMMENTS = re.compile(r"^\s*\d+\s+Comments?(?=[A-Z])")  # "0 CommentsNissan and ..."
_INPUTS_FROM = re.compile(r"\(\s*With (?:inputs|reporting) from [^)]{1,80}\)", re.I)
_HTML_TAG = re.compile(r"<(?:/?[a-zA-Z][^<>]{0,200})>")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b]+")


def clean_text(raw: str) -> str:
    """Decode entities, drop template debris, join hard-wrapped lines, normalise spaces."""
    text = html.unescape(raw)
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _TEMPLATE.sub(" ", text)
    text = _INPUTS_FROM.sub(" ", text)
    text = _LEADING_COMMENTS.sub("", text)
    text = _DEBRIS_LINES.sub("", text)
    paragraphs = re.split(r"\n\s*\n", text)
    joined = []
    for para in paragraphs:
        # Wire copy wraps lines at ~70 columns: a single newline inside a paragraph is a space.
        line = _SPACES.sub(" ", para.replace("\n", " ")).strip()
        if line:
            joined.append(line)
    return "\n\n".join(joined)


def strip_html(markup: str) -> str:
    """Plain text of an HTML fragment (feed summaries); whole pages go through trafilatura."""
    text = re.sub(r"(?i)<\s*(?:br|/p|/div|/li|/h\d)\s*/?>", "\n\n", markup)
    return _HTML_TAG.sub(" ", text)
