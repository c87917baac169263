"""The labelled corpus: TRAIN only, provenance on every article, labels that follow the guide's
format, a frozen held-out slice."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus" / "reuters21578"
COLLECTION = ROOT.parent / "shared" / "corpora" / "reuters21578"
STAGES = {"rumored", "talks", "agreed", "active", "failed", "ended"}


def reserved_from_ranges() -> set[int]:
    out: set[int] = set()
    for line in (CORPUS / "reserved_newids.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            lo, _, hi = line.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def reserved_from_collection() -> set[int]:
    out: set[int] = set()
    for path in sorted(COLLECTION.glob("reut2-*.sgm")):
        for m in re.finditer(r"<REUTERS\b([^>]*)>", path.read_text(encoding="latin-1")):
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if attrs["LEWISSPLIT"] != "TRAIN":
                out.add(int(attrs["NEWID"]))
    return out


def corpus_newids() -> dict[str, set[int]]:
    """NEWIDs of every article file the corpus keeps."""
    out = {}
    for path in CORPUS.rglob("*.jsonl"):
        out[str(path.relative_to(ROOT))] = {int(n) for n in
                                            re.findall(r"reuters-(\d+)", path.read_text())}
    return out


def test_no_article_of_the_reserved_splits_is_in_the_corpus():
    reserved = reserved_from_ranges()
    assert len(reserved) == 6910
    for name, ids in corpus_newids().items():
        assert not ids & reserved, (name, sorted(ids & reserved)[:10])


@pytest.mark.skipif(not COLLECTION.is_dir(), reason="the collection is not beside the repo")
def test_the_reserved_list_is_the_collections_own():
    assert reserved_from_ranges() == reserved_from_collection()


def test_every_article_has_provenance_and_a_label_in_the_same_order():
    articles = [json.loads(x) for x in (CORPUS / "articles.jsonl").read_text().splitlines()]
    gold = [json.loads(x) for x in (CORPUS / "gold.jsonl").read_text().splitlines()]
    assert len(articles) == len(gold) >= 1800
    for art, lab in zip(articles, gold, strict=True):
        prov = art["provenance"]
        assert prov["collection"] == "Reuters-21578" and prov["lewissplit"] == "TRAIN"
        assert art["id"] == f"reuters-{prov['newid']}" == lab["article_id"]
        for event in lab["events"]:
            assert event["stage"] in STAGES and len(event["parties"]) >= 2
            text = re.sub(r"\s+", " ", f"{art['title']} {art['text']}").lower()
            for party in event["parties"]:
                assert any(re.sub(r"\s+", " ", n).lower() in text for n in party.split("|")), \
                    (art["id"], party)


def test_the_heldout_slice_is_a_quarter_and_keeps_stories_together():
    articles = [json.loads(x) for x in (CORPUS / "articles.jsonl").read_text().splitlines()]
    held = {x for x in (CORPUS / "heldout.txt").read_text().splitlines()
            if x and not x.startswith("#")}
    assert len(held) >= 0.25 * len(articles)
    sides: dict[str, set[bool]] = {}
    for art in articles:
        sides.setdefault(art["provenance"]["story"], set()).add(art["id"] in held)
        if "dev246" in art["provenance"]["selected_by"]:
            assert art["id"] not in held  # read for errors before: never held out
    assert all(len(s) == 1 for s in sides.values())


@pytest.mark.skipif(not COLLECTION.is_dir(), reason="the collection is not beside the repo")
def test_selection_rebuilds_the_committed_corpus(tmp_path):
    from services.extractor.training.select import build

    build(COLLECTION, tmp_path)
    assert (tmp_path / "heldout.txt").read_text() == (CORPUS / "heldout.txt").read_text()
    committed = [json.loads(x)["id"] for x in (CORPUS / "articles.jsonl").read_text().split("\n")
                 if x]
    rebuilt = [json.loads(x)["id"] for x in (tmp_path / "articles.jsonl").read_text().split("\n")
               if x]
    assert rebuilt == committed
