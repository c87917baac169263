"""Which Reuters-21578 TRAIN articles are labelled, and which of them are held out.

Run once to (re)build `corpus/reuters21578/articles.jsonl` from the collection beside the
repository (`python -m services.extractor.training.select`). Only documents with
`LEWISSPLIT="TRAIN"` are read: the split attribute is checked before any text (see
`bench.corpus.parse_reuters_train`), so the TEST and NOT-USED splits stay unseen.

Selection, decided from the text alone before anything was labelled:
- `filter`: every TRAIN article whose title or body matches a broad cooperation filter
  (`COOPERATION_FILTER`);
- `random`: `RANDOM_COUNT` TRAIN articles drawn with `random.Random(RANDOM_SEED)`;
- `dev246`: the 246 articles labelled earlier (tests/data/reuters_train), kept in.

The held-out slice is frozen the same way, before any modelling: articles are grouped into
stories (exact or near-duplicate texts: the wire often carried one story twice), and within
each selection stratum the stories whose seeded hash ranks lowest are held out, enough for
`HELDOUT_SHARE` of all labelled articles. Stories with a `dev246` article are never held
out: the old rule-based extractor was tuned on those articles and their errors were read.
See `split_heldout`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.corpus import REUTERS_DIR, Article, load_reuters_train

CORPUS_DIR = Path(__file__).resolve().parents[3] / "corpus" / "reuters21578"
DEV246 = Path(__file__).resolve().parents[3] / "tests" / "data" / "reuters_train" / "articles.jsonl"

#: The broad filter from the issue: venture, partner*, alliance, cooperat*, collaborat*,
#: jointly, consortium, licens*, tie-up, team*, "agreement with", "talks with".
COOPERATION_FILTER = re.compile(
    r"\b(ventures?|partner\w*|alliances?|cooperat\w*|co-operat\w*|collaborat\w*|jointly"
    r"|consorti\w*|licens\w*|licenc\w*|tie-?ups?|team\w*|agreements? with|talks with)\b",
    re.I)
#: "Teamsters" (the union) matches team* but says nothing about companies.
_NOT_COOPERATION = re.compile(r"^teamsters?$", re.I)
#: Cues that name cooperation outright (the rest, partner*/team*/"agreement with"/"talks
#: with", are weaker): used only to stratify the held-out slice.
STRONG_CUES = re.compile(
    r"\b(joint[- ]?ventures?|ventures?|alliances?|co-?operat(e|es|ed|ing|ion)\b|collaborat\w*"
    r"|jointly|consorti\w*|licens\w*|licenc\w*|tie-?ups?)", re.I)

RANDOM_SEED = 1987_21578
RANDOM_COUNT = 500
HELDOUT_SEED = "alliance-radar-heldout-v1"
HELDOUT_SHARE = 0.25


def matches_filter(article: Article) -> bool:
    text = f"{article.title}\n{article.text}"
    return any(not _NOT_COOPERATION.match(m.group(0)) for m in COOPERATION_FILTER.finditer(text))


def stratum(article: Article, selected_by: Sequence[str]) -> str:
    """`strong` / `weak` filter hits, or `other` (random or earlier picks without a hit)."""
    if "filter" not in selected_by:
        return "other"
    return "strong" if STRONG_CUES.search(f"{article.title}\n{article.text}") else "weak"


def select(articles: Sequence[Article], dev_ids: Iterable[str]) -> dict[str, list[str]]:
    """article id -> the reasons it was selected, in corpus order."""
    reasons: dict[str, list[str]] = {}
    for article in articles:
        if matches_filter(article):
            reasons.setdefault(article.id, []).append("filter")
    for article in random.Random(RANDOM_SEED).sample(list(articles), RANDOM_COUNT):
        reasons.setdefault(article.id, []).append("random")
    known = {a.id for a in articles}
    for article_id in dev_ids:
        if article_id in known:
            reasons.setdefault(article_id, []).append("dev246")
    order = {a.id: n for n, a in enumerate(articles)}
    return {k: sorted(reasons[k]) for k in sorted(reasons, key=order.__getitem__)}


_WORD = re.compile(r"[a-z0-9]+")


def _shingles(text: str, size: int = 5) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i:i + size]) for i in range(max(len(words) - size + 1, 1))}


def story_groups(articles: Sequence[Article], threshold: float = 0.6) -> dict[str, str]:
    """article id -> the id of the first article of its story (exact or near-duplicate
    bodies, Jaccard similarity of word 5-shingles >= threshold, transitively)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    hashes: dict[str, MinHash] = {}
    shingles: dict[str, set[str]] = {}
    for article in articles:
        mh = MinHash(num_perm=128, seed=1)
        shingles[article.id] = _shingles(article.text)
        for s in shingles[article.id]:
            mh.update(s.encode())
        hashes[article.id] = mh
        lsh.insert(article.id, mh)
    parent = {a.id: a.id for a in articles}
    order = {a.id: n for n, a in enumerate(articles)}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for article in articles:
        for other in lsh.query(hashes[article.id]):
            if other == article.id:
                continue
            a, b = shingles[article.id], shingles[other]
            if len(a & b) / max(len(a | b), 1) >= threshold:  # exact check, not the sketch
                ra, rb = find(article.id), find(other)
                if ra != rb:
                    first, second = sorted((ra, rb), key=order.__getitem__)
                    parent[second] = first
    return {a.id: find(a.id) for a in articles}


def heldout_rank(story_id: str) -> str:
    return hashlib.sha256(f"{HELDOUT_SEED}:{story_id}".encode()).hexdigest()


def split_heldout(strata: dict[str, str], stories: dict[str, str],
                  seen: set[str]) -> set[str]:
    """Held-out article ids. A story's stratum is that of its first article; all its articles
    go to the same side, so no story is on both. Stories holding an article of `seen` (read
    for errors before) are not eligible; in each stratum the eligible stories are ranked by a
    seeded hash and taken from the lowest until the stratum's held-out articles reach
    HELDOUT_SHARE of all its articles (eligible or not)."""
    members: dict[str, list[str]] = {}
    for article_id, story in stories.items():
        members.setdefault(story, []).append(article_id)
    by_stratum: dict[str, list[str]] = {}
    for story in members:
        by_stratum.setdefault(strata[story], []).append(story)
    held: set[str] = set()
    for group in by_stratum.values():
        goal = HELDOUT_SHARE * sum(len(members[s]) for s in group)
        eligible = sorted((s for s in group if not seen.intersection(members[s])),
                          key=heldout_rank)
        taken = 0
        for story in eligible:
            if taken >= goal:
                break
            held.update(members[story])
            taken += len(members[story])
    return held


def build(reuters_dir: Path = REUTERS_DIR, out_dir: Path = CORPUS_DIR) -> dict[str, int]:
    articles = load_reuters_train(reuters_dir)
    dev_ids = [json.loads(line)["id"] for line in DEV246.read_text().splitlines() if line]
    reasons = select(articles, dev_ids)
    by_id = {a.id: a for a in articles}
    chosen = [by_id[k] for k in reasons]
    strata = {a.id: stratum(a, reasons[a.id]) for a in chosen}
    stories = story_groups(chosen)
    heldout = split_heldout(strata, stories, set(dev_ids))
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "articles.jsonl").open("w", encoding="utf-8") as out:
        for a in chosen:
            out.write(json.dumps({
                "id": a.id, "title": a.title, "text": a.text, "published_at": a.published_at,
                "source": a.source, "url": None,
                "provenance": {"collection": "Reuters-21578", "lewissplit": "TRAIN",
                               "newid": int(a.id.removeprefix("reuters-")),
                               "selected_by": reasons[a.id], "stratum": strata[a.id],
                               "story": stories[a.id]}}, ensure_ascii=False) + "\n")
    (out_dir / "heldout.txt").write_text(
        "# Frozen held-out slice: only scored, never tuned on, never read for errors.\n"
        "# Chosen by services/extractor/training/select.py before any modelling.\n"
        + "".join(f"{a.id}\n" for a in chosen if a.id in heldout))
    return {"articles": len(chosen), "heldout": len(heldout),
            "stories": len(set(stories.values()))}


if __name__ == "__main__":
    print(build())
