"""Article text before any parse: same-length normalisation, sentence split, candidate
windows. Pure functions; the offsets they return index the article text as given."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TEMPLATE = re.compile(r"\{\{[^{}\n]{0,80}\}\}")
_GLUED_COMMENTS = re.compile(r"^\s*\d+ Comments(?=[A-Z])")
_SINGLE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n)")
_TICKER = re.compile(r"<[A-Z0-9.]{1,10}>")  # "Chrysler Corp <C>"
#: "<Suzuki Motor Co Ltd>"; the wire often breaks a line inside one ("<Chesapeake\nBiological
#: Laboratories>").
_BRACKETED_NAME = re.compile(r"<([A-Z](?:[^<>\n]|\n(?!\n)){1,60})>")


def normalise(text: str) -> str:
    """Same-length cleanup: every replaced character becomes a space (offsets stay valid)."""
    def blank(m: re.Match[str]) -> str:
        return " " * len(m.group(0))

    text = _TEMPLATE.sub(blank, text)
    text = _GLUED_COMMENTS.sub(blank, text)
    # Wire-copy tickers and brackets confuse the parser (a sentence break after "<"); the
    # names stay, the decorations become spaces. Tickers are read from the original text.
    text = _TICKER.sub(blank, text)
    text = _BRACKETED_NAME.sub(lambda m: " " + m.group(1) + " ", text)
    return _SINGLE_NEWLINE.sub(" ", text)


@dataclass
class Window:
    """A stretch of one article to parse: cue sentences plus the sentence before each."""

    start: int
    end: int
    cue_sentences: list[tuple[int, int]] = field(default_factory=list)


def windows(sentences: list[tuple[int, int]], is_cue: list[bool]) -> list[Window]:
    """Merge [previous sentence, cue sentence] stretches that touch or overlap."""
    out: list[Window] = []
    for n, ((start, end), cue) in enumerate(zip(sentences, is_cue, strict=True)):
        if not cue:
            continue
        begin = sentences[n - 1][0] if n else start
        if out and begin <= out[-1].end:
            out[-1].end = max(out[-1].end, end)
            out[-1].cue_sentences.append((start, end))
        else:
            out.append(Window(begin, end, [(start, end)]))
    return out
