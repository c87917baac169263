"""Clean article text once, at the front door, so every consumer sees the same text.

Evidence offsets downstream point into this cleaned text, so cleaning happens here and only
here. Pure functions.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TEMPLATE = re.compile(r"\{\{[^{}]{0,80}\}\}|\{%[^{}]{0,80}%\}")  # {{^adFree}} {% endif %}
_DEBRIS_LINE = re.compile(
    r"""^[ \t]*(?:
        \d+[ \t]+Comments?
      | (?:Share|Tweet|Email|Print|Pin|Save)(?:[ \t]+(?:this|the))?(?:[ \t]+(?:article|story|
            post|page))?(?:[ \t]+(?:on|via|to|with)[ \t]+[\w .]{1,30})?:?
      | Share[ \t]+(?:on|via)[ \t]+.{0,60}
      | (?:Click[ \t]+here[ \t]+to[ \t]+)?Subscribe\b.{0,120}
      | Sign[ \t]+up\b.{0,40}\b(?:newsletter|alerts?|updates)\b.{0,60}
      | (?:Get|Receive)[ \t]+(?:our|the)[ \t]+.{0,40}\bnewsletter\b.{0,60}
      | Follow[ \t]+(?:us|\w+)[ \t]+on[ \t]+(?:Twitter|X|Facebook|LinkedIn|Instagram|Threads|
            Bluesky|Google[ \t]+News|WhatsApp|Telegram|YouTube)\b.{0,40}
      | Read[ \t]+more\b.{0,120}
      | (?:Related|Recommended|Most[ \t]+popular|Trending)(?:[ \t]+(?:articles?|
            stories|coverage|content|reading))?:?
      | (?:Story[ \t]+continues[ \t]+below[ \t]+)?Advertisement
      | Skip[ \t]+to[ \t]+(?:main[ \t]+)?content
      | (?:Copyright[ \t]*)?(?:©|\(c\))[ \t]*.{0,80}
      | Copyright[ \t]+\d{4}\b.{0,80}
      | All[ \t]+rights[ \t]+reserved\.?
      | (?:Reporting|Additional[ \t]+reporting|Writing)[ \t]+by[ \t]+[^\n]{1,120}
      | Editing[ \t]+by[ \t]+[^\n]{1,80}
      | Our[ \t]+Standards:.{0,80}
      | Reuter
      | [^\w\s][^\w\n]{0,19}
    )[ \t]*$""",
    re.I | re.M | re.X)  # [ \t], never \s: a match must not eat line breaks
_LEADING_COMMENTS = re.compile(r"^\s*\d+\s+Comments?(?=[A-Z])")  # "0 CommentsNissan and ..."
_INPUTS_FROM = re.compile(r"\(\s*(?:With (?:additional )?(?:inputs|reporting) (?:from|by) "
                          r"[^()]{1,80}|(?:Additional )?Reporting by [^()]{1,200})\)", re.I)
_HTML_TAG = re.compile(r"<(?:/?[a-zA-Z][^<>]{0,200})>")
_HTML_DROP = re.compile(r"(?is)<(script|style|noscript|template)\b[^>]*>.*?</\1\s*>|<!--.*?-->")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")  # soft hyphen, zero widths, BOM
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Wire copy starts paragraphs with an indented line: "\n    Nissan said ...".
_INDENTED_PARAGRAPH = re.compile(r"\n(?: {2,}|\t)[ \t]*(?=\S)")
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});")


def decode_entities(text: str) -> str:
    """HTML entities decoded, also when double-encoded (`&amp;amp;` -> `&`), at most 3 times."""
    for _ in range(3):
        if not _ENTITY.search(text):
            break
        text = html.unescape(text)
    return text


def clean_text(raw: str) -> str:
    """Decode entities, drop template debris and share/subscribe lines, join hard-wrapped
    lines, normalise whitespace. Paragraphs are separated by one blank line."""
    text = decode_entities(raw)
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    text = _TEMPLATE.sub(" ", text)
    text = _INPUTS_FROM.sub(" ", text)
    text = _LEADING_COMMENTS.sub("", text)
    text = _INDENTED_PARAGRAPH.sub("\n\n", text)
    text = _DEBRIS_LINE.sub("", text)
    joined = []
    for para in re.split(r"\n\s*\n", text):
        # Wire copy wraps lines at ~70 columns: a single newline inside a paragraph is a
        # space, and a line ending in a hyphen continues the word ("Franco-\nGerman").
        para = re.sub(r"(?<=\w)-\n(?=\w)", "-", para)
        line = _SPACES.sub(" ", para.replace("\n", " ")).strip()
        if line:
            joined.append(line)
    return "\n\n".join(joined)


def strip_html(markup: str) -> str:
    """Plain text of an HTML fragment (feed summaries); whole pages go through trafilatura."""
    text = _HTML_DROP.sub(" ", markup)
    text = re.sub(r"(?i)<\s*(?:br|/p|/div|/li|/h\d|/blockquote|/tr)\s*/?>", "\n\n", text)
    return _HTML_TAG.sub(" ", text)
