"""Documents generated from the code, so they cannot drift from it: the README sections
(settings, topics, schemas) and the AsyncAPI document.

`radar docs` rewrites the marked sections of README.md and `radar asyncapi` the AsyncAPI
file; unit tests fail when either is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import BaseModel

from shared import asyncapi
from shared.settings import env_vars
from shared.topics import TOPICS, Topic


def config_markdown() -> str:
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, (_, _, default, description) in env_vars().items():
        shown = "" if default is None else str(getattr(default, "value", default))
        lines.append(f"| `{name}` | `{shown}` | {description} |")
    return "\n".join(lines)


def _flow(topic: Topic) -> str:
    """Senders -> receivers, and the registry's remark."""
    senders = ", ".join(dict.fromkeys(f.label for f in topic.sends))
    receivers = ", ".join(dict.fromkeys(f.label for f in topic.receives))
    flow = f"{senders} -> {receivers}" if senders or receivers else ""
    if topic.note:
        flow = f"{flow} ({topic.note})" if flow else topic.note
    return flow


def _shown_address(topic: Topic) -> str:
    return topic.address.replace("{inputTopic}", "<input topic>").replace("{appId}",
                                                                        "<app id>")


def _fields_table(model: type[BaseModel]) -> list[str]:
    doc = (model.__doc__ or "").strip().splitlines()[0]
    lines = [f"**`{model.__name__}`** — {doc}", "", "| Field | Type | Meaning |",
             "| --- | --- | --- |"]
    for name, field in model.model_fields.items():
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
        kind = kind.replace("typing.", "").replace("shared.contracts.", "")
        kind = kind.replace("|", "or")
        lines.append(f"| `{name}` | `{kind}` | {field.description or ''} |")
    return [*lines, ""]


def topics_markdown(topics: tuple[Topic, ...] = TOPICS) -> str:
    """The topic table and one field table per message model, from the topic registry."""
    lines = ["| Topic | Message | Key | Flow |", "| --- | --- | --- | --- |"]
    for topic in topics:
        lines.append(f"| `{_shown_address(topic)}` | `{topic.model.__name__}` | "
                     f"`{topic.key}` | {_flow(topic)} |")
    lines.append("")
    for model in dict.fromkeys(t.model for t in topics):
        lines += _fields_table(model)
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


def write_asyncapi(output: Path = asyncapi.DEFAULT_OUTPUT, *, check: bool = False) -> int:
    """Write the AsyncAPI document to `output` (exit code 0), or with `check` only compare
    (1 when the file is stale). Prints what it did."""
    text = asyncapi.render()
    current = output.read_text() if output.exists() else None
    if check:
        if current != text:
            print(f"{output} is stale: run radar asyncapi", file=sys.stderr)
            return 1
        print(f"{output}: up to date")
        return 0
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    print(f"{output}: {'up to date' if current == text else 'written'}")
    return 0
