"""`radar_paragraphs`: a paragraph break always ends a sentence."""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc


@Language.component("radar_paragraphs")
def paragraph_boundaries(doc: Doc) -> Doc:
    """"Smyrna, Tenn.\\n\\nWhile ...": a paragraph break ends the sentence. Set before the
    parser (which respects preset boundaries) or after a rule-based sentencizer. Windows of
    one article are joined by paragraph breaks, so no sentence spans two windows."""
    for token in doc[:-1]:
        if token.is_space and "\n" in token.text:
            doc[token.i + 1].is_sent_start = True
    return doc
