"""README sections generated from the code, so the docs cannot drift from it.

`radar docs` rewrites the marked sections of README.md; a unit test fails when they are stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.contracts import (
    AllianceChange,
    AllianceState,
    ArticleEvent,
    Contract,
    DeadLetter,
    PartnershipEvent,
    RawDocument,
    SeenArticle,
)
from shared.settings import env_vars

TOPICS: list[tuple[str, type[Contract], str, str]] = [
    ("news.articles.v1", ArticleEvent, "`article_id`", "ingestor -> extractor"),
    ("alliances.partnerships.v1", PartnershipEvent, "`alliance_id`",
     "extractor -> aggregator (retained: replay source)"),
    ("alliances.changes.v1", AllianceChange, "`alliance_id`",
     "aggregator -> your services, `radar watch`"),
    ("alliances.state.v1", AllianceState, "`alliance_id`",
     "aggregator -> your services (compacted: latest per key)"),
    ("news.seen.v1", SeenArticle, "`article_id`",
     "ingestor -> ingestor, `radar ingest` (compacted: dedup memory)"),
    ("news.inbox.v1", RawDocument, "`document_id`",
     "your services -> ingestor (raw documents; bad ones to `.dlq`)"),
    ("<input topic>.dlq", DeadLetter, "`topic:partition:offset`",
     "records a service could not process"),
]


def config_markdown() -> str:
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, (_, _, default, description) in env_vars().items():
        shown = "" if default is None else str(getattr(default, "value", default))
        lines.append(f"| `{name}` | `{shown}` | {description} |")
    return "\n".join(lines)


def topics_markdown() -> str:
    lines = ["| Topic | Message | Key | Flow |", "| --- | --- | --- | --- |"]
    for topic, model, key, flow in TOPICS:
        lines.append(f"| `{topic}` | `{model.__name__}` | {key} | {flow} |")
    lines.append("")
    for _, model, _, _ in TOPICS:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines.append(f"**`{model.__name__}`** — {doc}")
        lines.append("")
        lines.append("| Field | Type | Meaning |")
        lines.append("| --- | --- | --- |")
        for name, field in model.model_fields.items():
            kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
            kind = kind.replace("typing.", "").replace("shared.contracts.", "")
            kind = kind.replace("|", "or")
            lines.append(f"| `{name}` | `{kind}` | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines).rstrip()


SECTIONS = {"config": config_markdown, "topics": topics_markdown}


def render(readme: str) -> str:
    for name, fn in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README has no {name} markers")
        readme = pattern.sub(lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(2), readme)
    return readme


def update(path: Path) -> bool:
    """Rewrite the generated sections; True if anything changed."""
    old = path.read_text()
    new = render(old)
    if new != old:
        path.write_text(new)
    return new != old
