"""Cleaning: debris and share/subscribe lines out, entities decoded, wire lines joined."""

import pytest

from services.ingestor.clean import clean_text, decode_entities, strip_html


@pytest.mark.parametrize("debris", [
    "Share this article", "Share on Facebook", "Share via Email", "Tweet", "Print",
    "Click here to subscribe to our daily briefing", "Subscribe now for $1",
    "Sign up for our Breakingviews newsletter", "Get our free newsletter every morning",
    "Follow us on Twitter", "Follow Reuters on LinkedIn", "Read more: Why chips are scarce",
    "Related articles", "Most popular", "Advertisement", "Story continues below advertisement",
    "Skip to content", "© 2024 Example Media Ltd", "Copyright 2024 Example Media",
    "All rights reserved.", "Reporting by Jane Doe; Editing by John Roe",
    "Editing by Mark Potter", "0 Comments", "12 comments", "Reuter", "* * *", "---",
])
def test_debris_lines_are_dropped(debris: str) -> None:
    text = f"Acme and Beta agreed to work together.\n{debris}\nThe deal closes in June."
    assert clean_text(text) == \
        "Acme and Beta agreed to work together.\n\nThe deal closes in June."


@pytest.mark.parametrize("kept", [
    "Subscribers to the service rose 10 percent.",
    "Copyright disputes between the companies ended in 2019.",
    "Share prices rose after the announcement.",
    "Follow-on orders are expected, Acme said.",
    "Related companies may join later.",
])
def test_sentences_that_merely_start_like_debris_stay(kept: str) -> None:
    assert clean_text(f"Acme and Beta agreed.\n\n{kept}") == f"Acme and Beta agreed.\n\n{kept}"


def test_credits_in_parentheses_and_templates_go() -> None:
    raw = ("Acme and Beta agreed. {{^adFree}} {{/adFree}} {% if x %}(With inputs from Reuters) "
           "(Reporting by Jane Doe in Tokyo; Editing by Ed)")
    assert clean_text(raw) == "Acme and Beta agreed."


def test_entities_decoded_once_or_twice_but_plain_ampersands_survive() -> None:
    assert decode_entities("AT&amp;amp;T &#8217; &eacute; &#x2014;") == "AT&T \u2019 \u00e9 \u2014"
    assert clean_text("Procter &amp; Gamble &lt;PG&gt;") == "Procter & Gamble <PG>"
    assert clean_text("R&D spending; Q&A") == "R&D spending; Q&A"


def test_wire_copy_lines_join_and_indented_paragraphs_split() -> None:
    raw = ("TOKYO, March 12 - Nissan Motor Co and Honda Motor\n"
           "Co are in talks to jointly develop software, a Franco-\n"
           "Japanese team said.\n"
           "    The talks started in January, the people said.\n"
           "\tNo decision has been made.\n"
           " Reuter\n")
    assert clean_text(raw) == (
        "TOKYO, March 12 - Nissan Motor Co and Honda Motor Co are in talks to jointly "
        "develop software, a Franco-Japanese team said.\n\n"
        "The talks started in January, the people said.\n\nNo decision has been made.")


def test_whitespace_invisible_and_control_characters() -> None:
    raw = "\ufeffAcme\u00a0and\u2009Beta\u200b agreed\u00ad.\r\n\r\n\r\n\x07Deal  closes\t soon."
    assert clean_text(raw) == "Acme and Beta agreed.\n\nDeal closes soon."


def test_strip_html_drops_scripts_styles_comments() -> None:
    html = ("<p>Acme<script>alert('x')</script> and <b>Beta</b></p><!-- hidden -->"
            "<style>p { color: red }</style><p>agreed</p>")
    assert clean_text(strip_html(html)) == "Acme and Beta\n\nagreed"
