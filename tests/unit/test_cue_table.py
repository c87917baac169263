"""Every rule of the cue table (services/extractor/data/cues.toml) with its own examples:
each `match` example must match and each `no_match` example must not. The tests are generated
from the table, so a new rule brings its tests with it."""

import pytest

from services.extractor.components.companies import described_names, described_pattern
from services.extractor.cues import CueTable, default_cues

TABLE = default_cues()
CASES = [(kind, cue.name, example, want)
         for kind, cues in (("cue", TABLE.cues), ("area", TABLE.areas),
                            ("attribution", TABLE.attribution))
         for cue in cues
         for examples, want in ((cue.match, True), (cue.no_match, False))
         for example in examples]


@pytest.mark.parametrize(("kind", "name", "example", "want"), CASES,
                         ids=[f"{k}:{n}:{'+' if w else '-'}:{e[:30]}" for k, n, e, w in CASES])
def test_rule_on_its_own_example(kind, name, example, want):
    rules = {"cue": TABLE.cues, "area": TABLE.areas, "attribution": TABLE.attribution}[kind]
    cue = next(c for c in rules if c.name == name)
    assert bool(cue.pattern.search(example)) is want


def test_every_rule_has_examples_both_ways():
    for cue in (*TABLE.cues, *TABLE.areas, *TABLE.attribution):
        assert cue.match and cue.no_match, cue.name


def test_every_cue_says_why():
    assert all(c.why for c in TABLE.cues)


def test_name_rules_on_their_examples():
    names = TABLE.names
    assert all(names.is_body(x) for x in names.body_match)
    assert not any(names.is_body(x) for x in names.body_no_match)
    assert names.legal_form_match and names.legal_form_no_match
    assert all(names.legal_form.search(x) for x in names.legal_form_match)
    assert not any(names.legal_form.search(x) for x in names.legal_form_no_match)


@pytest.mark.parametrize("example", TABLE.names.descriptor_match)
def test_description_nouns_introduce_a_company(example):
    pattern = described_pattern(TABLE.names)
    found = [example[a:b] for a, b in described_names(example, pattern, TABLE.names)]
    assert found and all(name[0].isupper() for name in found), found


@pytest.mark.parametrize("example", TABLE.names.descriptor_no_match)
def test_description_nouns_without_a_name_after_them(example):
    assert described_names(example, described_pattern(TABLE.names), TABLE.names) == []


@pytest.mark.parametrize("example", TABLE.names.wire_case_match)
def test_wire_case_lowers_the_common_word_after_us(example):
    recased = TABLE.names.recase(example)
    assert len(recased) == len(example) and recased != example
    assert recased.lower() == example.lower()


@pytest.mark.parametrize("example", TABLE.names.wire_case_no_match)
def test_wire_case_keeps_names(example):
    assert TABLE.names.recase(example) == example


def test_gate_is_the_union_of_gate_cues():
    gates = [c for c in TABLE.cues if c.gate]
    assert gates
    for cue in gates:
        for example in cue.match:
            assert TABLE.is_gate(example), (cue.name, example)
    assert not TABLE.is_gate("Shares of Acme rose 3 pct on strong demand.")


def test_duplicate_names_are_refused():
    data = {"cue": [{"name": "x", "pattern": "a"}, {"name": "x", "pattern": "b"}],
            "area": [], "attribution": [],
            "names": {"designators": [], "body_pattern": "z", "not_companies": [],
                      "start_words": [], "headline_stop": [], "unit_words": [],
                      "generic_words": []}}
    with pytest.raises(ValueError, match="unique"):
        CueTable(data)
