"""The AsyncAPI 3.1 document of every Kafka topic of Alliance Radar, generated from the
pydantic models (`shared/contracts.py` for the public topics, `index.py` for the
aggregator's internal ones).

    python -m services.aggregator.asyncapi            # rewrite deploy/asyncapi/asyncapi.json
    python -m services.aggregator.asyncapi --check    # exit 1 if the committed file is stale

A unit test checks that the committed document is what this module generates, and an
integration test validates it with the reference parser (npm `@asyncapi/parser`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.aggregator.index import CompanyIndex, CompanyLink
from shared.contracts import WIRE_MODELS, AllianceState, DeadLetter

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "deploy" / "asyncapi" / "asyncapi.json"
KAFKA_BINDING = "0.5.0"
APP_ID = {"appId": {"description": "Aggregator app id (RADAR_AGGREGATOR_APP_ID); "
                    "`radar replay` uses radar-aggregator-replay-<time>.",
                    "default": "radar-aggregator", "examples": ["radar-aggregator"]}}


@dataclass(frozen=True)
class Flow:
    """Who sends or receives on a channel, and why."""

    service: str
    action: str  # "send" or "receive"
    summary: str


@dataclass(frozen=True)
class Channel:
    id: str
    address: str
    model: type[BaseModel]
    key: str
    description: str
    flows: tuple[Flow, ...]
    cleanup_policy: str = "delete"
    internal: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Public:
    """What the models do not say about a public topic: its key, flows and clean-up, and
    which service dead-letters the records it cannot read."""

    id: str
    key: str
    description: str
    flows: tuple[Flow, ...]
    cleanup_policy: str = "delete"
    dead_lettered_by: str | None = None


#: One entry per model of `WIRE_MODELS` (a unit test fails when a model has none).
PUBLIC: dict[str, Public] = {
    "RawDocument": Public(
        "inbox", "document_id", "Raw documents (feeds, JSON Lines, JSON, HTML, text, or a URL "
        "to fetch) handed to the ingestor over Kafka.",
        (Flow("senders", "send", "Any service hands the ingestor a document to ingest."),
         Flow("ingestor", "receive", "The ingestor parses, cleans and publishes the "
              "articles in it.")),
        dead_lettered_by="ingestor"),
    "ArticleEvent": Public(
        "articles", "article_id", "Cleaned news articles, one record per distinct story.",
        (Flow("ingestor", "send", "The ingestor (HTTP, watched folder, inbox topic, "
              "`radar ingest`) publishes each cleaned article."),
         Flow("extractor", "receive", "The extractor reads articles and extracts "
              "partnerships.")),
        dead_lettered_by="extractor"),
    "SeenArticle": Public(
        "seen", "article_id", "The ingestor's dedup memory: what it published, replayed at "
        "start-up (compacted; a null value forgets an article).",
        (Flow("ingestor", "send", "The ingestor records each story it published."),
         Flow("ingestor", "receive", "The ingestor replays the memory at start-up.")),
        cleanup_policy="compact"),
    "PartnershipEvent": Public(
        "partnerships", "alliance_id", "Partnership events; retained: the source of truth "
        "that `radar replay` rebuilds the view from.",
        (Flow("extractor", "send", "The extractor publishes one event per party set and "
              "article."),
         Flow("aggregator", "receive", "The aggregator folds events into the alliance "
              "view.")),
        dead_lettered_by="aggregator"),
    "AllianceChange": Public(
        "changes", "alliance_id", "The change feed: one record exactly when an alliance "
        "appears or its stage changes. At least once: dedup on change_id.",
        (Flow("aggregator", "send", "The aggregator announces each stage change."),
         Flow("subscribers", "receive", "Your services and `radar watch` follow the "
              "changes."))),
    "AllianceState": Public(
        "state", "alliance_id", "The full alliance state after each change (compacted: the "
        "latest per alliance).",
        (Flow("aggregator", "send", "The aggregator publishes the state after each change."),
         Flow("subscribers", "receive", "Your services read the latest state per "
              "alliance.")),
        cleanup_policy="compact"),
    "DeadLetter": Public(
        "deadLetters", "topic:partition:offset", "Records a service could not process, with "
        "the reason and the raw bytes.", ()),
}


def public_channels() -> list[Channel]:
    """The public topics, in `WIRE_MODELS` order; dead letters get one channel with the
    input topic as a parameter."""
    missing = [m.__name__ for m in WIRE_MODELS if m.__name__ not in PUBLIC]
    if missing:
        raise KeyError(f"no AsyncAPI metadata for {missing}: add them to PUBLIC in {__name__}")
    out = []
    for model in WIRE_MODELS:
        info = PUBLIC[model.__name__]
        if model is DeadLetter:
            sources = [(m, PUBLIC[m.__name__].dead_lettered_by) for m in WIRE_MODELS
                       if PUBLIC[m.__name__].dead_lettered_by]
            flows = tuple(Flow(service, "send", f"The {service} dead-letters records of "
                               f"{m.topic} it cannot process.") for m, service in sources)
            param = {"inputTopic": {"description": "The topic the record came from.",
                                    "enum": [m.topic for m, _ in sources]}}
            out.append(Channel(info.id, "{inputTopic}.dlq", model, info.key,
                               info.description, flows, parameters=param))
        else:
            out.append(Channel(info.id, model.topic, model, info.key, info.description,
                               info.flows, info.cleanup_policy))
    return out


INTERNAL: tuple[Channel, ...] = (
    Channel("companyIndex", "{appId}-company-index", CompanyLink, "company slug",
            "Internal repartition topic of the aggregator: one record per party of a changed "
            "alliance, keyed by company, so the company index is updated by the worker that "
            "owns the company.",
            (Flow("aggregator", "send", "The alliance agent re-keys each change by company."),
             Flow("aggregator", "receive", "The index agent updates the companies table.")),
            internal=True, parameters=APP_ID),
    Channel("alliancesChangelog", "{appId}-alliances-changelog", AllianceState,
            "alliance_id", "Internal: Faust changelog of the `alliances` table (restores it "
            "after a restart or a rebalance).",
            (Flow("aggregator", "send", "Each table write."),
             Flow("aggregator", "receive", "Table recovery and standby replicas.")),
            cleanup_policy="compact", internal=True, parameters=APP_ID),
    Channel("companiesChangelog", "{appId}-companies-changelog", CompanyIndex,
            "company slug", "Internal: Faust changelog of the `companies` table (the company "
            "index).",
            (Flow("aggregator", "send", "Each table write."),
             Flow("aggregator", "receive", "Table recovery and standby replicas.")),
            cleanup_policy="compact", internal=True, parameters=APP_ID),
)


def all_channels() -> list[Channel]:
    return [*public_channels(), *INTERNAL]


def _version() -> str:
    try:
        return version("alliance-radar")
    except PackageNotFoundError:
        return "0.0.0"


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _operation_id(flow: Flow, channel: Channel) -> str:
    verb = "Sends" if flow.action == "send" else "Receives"
    return f"{flow.service}{verb}{channel.id[0].upper()}{channel.id[1:]}"


def document() -> dict[str, Any]:
    """The whole AsyncAPI 3.1 document."""
    listed = all_channels()
    models = list(dict.fromkeys(c.model for c in listed))
    _, defs = models_json_schema([(m, "validation") for m in models],
                                 ref_template="#/components/schemas/{model}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for ch in listed:
        name = ch.model.__name__
        messages[name] = {
            "name": name, "title": name, "summary": _doc(ch.model).split(". ")[0],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": ch.key},
                                   "bindingVersion": KAFKA_BINDING}},
        }
        channel: dict[str, Any] = {
            "address": ch.address, "title": ch.address, "description": ch.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"kafka": {"topicConfiguration": {"cleanup.policy":
                                                          [ch.cleanup_policy]},
                                   "bindingVersion": KAFKA_BINDING}},
            "tags": [{"name": "internal" if ch.internal else "public"}],
        }
        if ch.parameters:
            channel["parameters"] = ch.parameters
        channels[ch.id] = channel
        for flow in ch.flows:
            operations[_operation_id(flow, ch)] = {
                "action": flow.action, "channel": {"$ref": f"#/channels/{ch.id}"},
                "summary": flow.summary,
                "messages": [{"$ref": f"#/channels/{ch.id}/messages/{name}"}],
                "tags": [{"name": flow.service}],
            }
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Alliance Radar topics",
            "version": _version(),
            "description": "Every Kafka topic of Alliance Radar: news in, "
            "partnership events, the alliance change feed and state out, dead letters, and "
            "the aggregator's internal topics. JSON values, one pydantic model per topic "
            "(shared/contracts.py); delivery is at least once, so consumers dedup on the "
            "ids each message carries. Topic names are the defaults (RADAR_TOPIC_*).",
            "tags": [{"name": "public", "description": "Topics other services may use."},
                     {"name": "internal", "description": "The aggregator's own topics; "
                      "do not produce to them."}],
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:9092", "protocol": "kafka",
                         "description": "`radar broker` / `radar up`: the embedded broker "
                         "(memory only)."},
            "compose": {"host": "kafka:9092", "protocol": "kafka",
                        "description": "Apache Kafka in docker-compose (localhost:9094 from "
                        "the host)."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": defs["$defs"]},
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="Exit 1 if the file differs from what would be generated.")
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text() if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run python -m services.aggregator.asyncapi",
                  file=sys.stderr)
            return 1
        print(f"{args.output}: up to date")
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(f"{args.output}: {'up to date' if current == text else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
