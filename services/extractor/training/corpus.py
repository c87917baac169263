"""The labelled corpus in the repository: articles, gold events, the frozen held-out slice."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.extractor.evaluation import Event
from shared.contracts import ArticleEvent

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "corpus" / "reuters21578"


@dataclass(frozen=True)
class Labelled:
    article: ArticleEvent
    events: tuple[Event, ...]
    story: str  # articles of one story stay in one cross-validation fold
    heldout: bool
    evidence: tuple[str, ...] = ()  # per event: the labeller's verbatim quote ("" if none)


def heldout_ids(folder: Path = CORPUS) -> set[str]:
    return {line.strip() for line in (folder / "heldout.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def to_article(row: dict) -> ArticleEvent:
    return ArticleEvent(article_id=row["id"], title=row["title"], text=row["text"],
                        published_at=row["published_at"], source=row.get("source") or "Reuters",
                        url=row.get("url"))


def load(folder: Path = CORPUS, articles: str = "articles.jsonl", gold: str = "gold.jsonl"
         ) -> list[Labelled]:
    held = heldout_ids(folder) if (folder / "heldout.txt").exists() else set()
    rows = [json.loads(line) for line in (folder / articles).read_text().splitlines() if line]
    labels, quotes = {}, {}
    for line in (folder / gold).read_text().splitlines():
        if line:
            rec = json.loads(line)
            labels[rec["article_id"]] = tuple(Event(list(e["parties"]), e["stage"])
                                              for e in rec["events"])
            quotes[rec["article_id"]] = tuple(e.get("evidence", "") for e in rec["events"])
    return [Labelled(to_article(r), labels[r["id"]],
                     r.get("provenance", {}).get("story", r["id"]), r["id"] in held,
                     quotes[r["id"]])
            for r in rows]


def training_part(items: list[Labelled]) -> list[Labelled]:
    return [i for i in items if not i.heldout]


def heldout_part(items: list[Labelled]) -> list[Labelled]:
    return [i for i in items if i.heldout]
