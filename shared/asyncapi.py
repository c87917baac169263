"""The AsyncAPI 3.1 document of every Kafka topic of Alliance Radar, made from the topic
registry (`shared/topics.py`) and its pydantic models.

`radar asyncapi` writes it to deploy/asyncapi/asyncapi.json (`--check` reports a stale
file); a unit test checks that the committed document is what this module makes, and an
integration test validates it with the reference parser (npm `@asyncapi/parser`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.topics import APP_ID_PARAMETER, TOPICS, Topic, dead_letter_sources

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "deploy" / "asyncapi" / "asyncapi.json"
KAFKA_BINDING = "0.5.0"


@dataclass(frozen=True)
class Operation:
    """One party's send or receive on a channel."""

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
    operations: tuple[Operation, ...]
    cleanup_policy: str = "delete"
    internal: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def channel_of(topic: Topic, topics: tuple[Topic, ...] = TOPICS) -> Channel:
    """The channel of one registry entry. Dead letters are one channel with the input topic
    as a parameter, sent by every service that dead-letters something."""
    operations = tuple([Operation(f.party, "send", f.summary) for f in topic.sends]
                       + [Operation(f.party, "receive", f.summary) for f in topic.receives])
    parameters: dict[str, Any] = APP_ID_PARAMETER if "{appId}" in topic.address else {}
    if "{inputTopic}" in topic.address:
        sources = dead_letter_sources(topics)
        operations = tuple(Operation(str(t.dead_lettered_by), "send",
                                     f"The {t.dead_lettered_by} dead-letters records of "
                                     f"{t.address} it cannot process.") for t in sources)
        parameters = {"inputTopic": {"description": "The topic the record came from.",
                                     "enum": [t.address for t in sources]}}
    return Channel(topic.id, topic.address, topic.model, topic.key, topic.description,
                   operations, topic.cleanup_policy, topic.internal, parameters)


def channels_of(topics: tuple[Topic, ...] = TOPICS) -> list[Channel]:
    return [channel_of(t, topics) for t in topics]


def _version() -> str:
    try:
        return version("alliance-radar")
    except PackageNotFoundError:
        return "0.0.0"


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _operation_id(flow: Operation, channel: Channel) -> str:
    verb = "Sends" if flow.action == "send" else "Receives"
    return f"{flow.service}{verb}{channel.id[0].upper()}{channel.id[1:]}"


def document(topics: tuple[Topic, ...] = TOPICS) -> dict[str, Any]:
    """The whole AsyncAPI 3.1 document of the registry `topics`."""
    listed = channels_of(topics)
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
        for flow in ch.operations:
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
            "(shared/contracts.py), every topic declared once (shared/topics.py); delivery "
            "is at least once, so consumers dedup on the ids each message carries. Topic "
            "names are the defaults (RADAR_TOPIC_*).",
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


def render(topics: tuple[Topic, ...] = TOPICS) -> str:
    return json.dumps(document(topics), indent=2, ensure_ascii=False) + "\n"
