"""Language detection (py3langid, offline) and the publish policy."""

import pytest

from services.ingestor.language import LanguagePolicy, detect, primary_tag

EN = ("Toyota Motor Corp and Mazda Motor Corp are in talks to jointly develop hydrogen "
      "engines, the companies said on Tuesday.")
DE = ("Volkswagen und Ford haben am Donnerstag eine Vereinbarung über den gemeinsamen Bau "
      "von Elektrotransportern unterzeichnet, teilten die Unternehmen mit.")
FR = ("Renault et Nissan ont annoncé jeudi un nouvel accord de coopération sur les batteries "
      "pour les véhicules électriques.")
SHORT = "Acme and Beta formed a venture."


@pytest.mark.parametrize(("text", "language"), [(EN, "en"), (DE, "de"), (FR, "fr")])
def test_detects_with_confidence(text: str, language: str) -> None:
    found = detect(text)
    assert found.language == language and found.confidence > 0.95


def test_english_only_by_default_skips_confident_others() -> None:
    policy = LanguagePolicy()
    assert policy.judge(EN).allowed and policy.judge(EN).language == "en"
    verdict = policy.judge(DE)
    assert (verdict.allowed, verdict.language) == (False, "de")


def test_unsure_detection_keeps_the_article_under_the_declared_language() -> None:
    policy = LanguagePolicy()
    assert detect(SHORT).confidence < 0.9
    kept = policy.judge(SHORT)
    assert kept.allowed
    assert policy.judge(SHORT, declared="en-US").language == "en"
    declared_other = policy.judge(SHORT, declared="de")
    assert (declared_other.allowed, declared_other.language) == (False, "de")


def test_configured_languages_and_star() -> None:
    assert LanguagePolicy(frozenset({"en", "de"})).judge(DE).allowed
    assert not LanguagePolicy(frozenset({"en", "de"})).judge(FR).allowed
    assert LanguagePolicy(None).judge(FR).allowed


def test_primary_tag() -> None:
    assert [primary_tag(t) for t in ("en-US", "pt_BR", "DE")] == ["en", "pt", "de"]
