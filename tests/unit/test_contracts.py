from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.contracts import (
    AllianceChange,
    ArticleEvent,
    DeadLetter,
    Evidence,
    PartnershipEvent,
    Stage,
    alliance_id_for,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def event(parties: list[str], stage: str = "talks", article: str = "a1") -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.8, published_at=T0,
        evidence=[Evidence(sentence="Nissan and Honda are in talks.", start=0, end=30)])


def test_alliance_id_ignores_order_and_case():
    assert alliance_id_for(["Nissan", "Honda"]) == alliance_id_for(["honda", "NISSAN"])
    assert alliance_id_for(["General Motors", "Nissan", "Renault"]) == \
        "general-motors+nissan+renault"


def test_alliance_needs_two_distinct_parties():
    with pytest.raises(ValueError):
        alliance_id_for(["Nissan", "nissan"])


def test_partnership_event_sorts_parties_and_keys_by_alliance():
    ev = event(["Nissan", "Honda"])
    assert ev.parties == ["Honda", "Nissan"]
    assert ev.key() == b"honda+nissan"
    assert ev.event_id == PartnershipEvent.make_event_id("a1", ["Honda", "Nissan"])
    assert ev.event_id != PartnershipEvent.make_event_id("a2", ["Honda", "Nissan"])


def test_partnership_event_round_trips_as_json():
    ev = event(["Nissan", "Honda"])
    again = PartnershipEvent.from_bytes(ev.to_bytes())
    assert again == ev
    assert again.stage is Stage.TALKS


@pytest.mark.parametrize("bad", [
    {"parties": ["Nissan"]},
    {"parties": ["Nissan", "Nissan"]},
    {"stage": "merged"},
    {"confidence": 1.5},
    {"evidence": []},
])
def test_partnership_event_rejects_invalid(bad):
    data = event(["Nissan", "Honda"]).model_dump() | bad
    with pytest.raises(ValidationError):
        PartnershipEvent.model_validate(data)


def test_contracts_forbid_unknown_fields_and_naive_times():
    with pytest.raises(ValidationError):
        ArticleEvent(article_id="x", text="t", published_at=T0, surprise=1)
    with pytest.raises(ValidationError):
        ArticleEvent(article_id="x", text="t", published_at=datetime(2024, 1, 1))


def test_article_needs_text():
    with pytest.raises(ValidationError):
        ArticleEvent(article_id="x", text="   ", published_at=T0)


def test_dead_letter_keeps_raw_bytes_through_json():
    raw = b"\xff\x00not json"
    letter = DeadLetter(service="extractor", topic_name="news.articles.v1", partition=1,
                        offset=7, record_value=raw, reason="invalid_json", error="bad")
    again = DeadLetter.from_bytes(letter.to_bytes())
    assert again.record_value == raw
    assert again.key() == b"news.articles.v1:1:7"


def test_every_wire_model_has_schema_version_and_descriptions():
    from shared.topics import WIRE_MODELS

    for model in WIRE_MODELS:
        assert "schema_version" in model.model_fields
        assert model.model_fields["schema_version"].default == 1
    for name, field in AllianceChange.model_fields.items():
        assert field.description, f"AllianceChange.{name} has no description"


def test_evidence_cue_offsets_are_optional_and_inside_the_sentence():
    text = "Markets were calm. Nissan and Honda are in talks."
    ev = Evidence(sentence=text[19:], start=19, end=len(text), cue_start=40, cue_end=48)
    assert ev.cue == "in talks"
    assert Evidence(sentence="x", start=0, end=1).cue is None
    for bad in ({"cue_start": 18, "cue_end": 25},   # before the sentence
                {"cue_start": 40, "cue_end": 60},   # past its end (49)
                {"cue_start": 40, "cue_end": 40},   # empty
                {"cue_start": 40}):                 # half a span
        with pytest.raises(ValidationError):
            Evidence(sentence=text[19:], start=19, end=len(text), **bad)


def test_records_written_before_the_cue_and_url_fields_still_validate():
    """The fields are additive (schema_version stays 1): an old record reads as unknown."""
    old = event(["Honda", "Nissan"]).model_dump(mode="json")
    del old["article_url"]
    for e in old["evidence"]:
        del e["cue_start"], e["cue_end"]
    read = PartnershipEvent.model_validate(old)
    assert read.article_url is None and read.evidence[0].cue_start is None
    assert read.schema_version == 1
