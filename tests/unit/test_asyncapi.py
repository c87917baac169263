"""The committed AsyncAPI document is what the generator makes from the topic registry and
the models, and covers every topic. (The reference parser validates it:
tests/integration/test_asyncapi.py.)
"""

import json
from pathlib import Path

from services.cli.docs import write_asyncapi
from shared import asyncapi
from shared.settings import TopicSettings
from shared.topics import TOPICS, WIRE_MODELS

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "asyncapi" / "asyncapi.json"


def test_committed_document_is_regenerated_identically():
    assert asyncapi.DEFAULT_OUTPUT == COMMITTED
    assert COMMITTED.read_text() == asyncapi.render(), (
        "deploy/asyncapi/asyncapi.json is stale: run radar asyncapi")


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    target = tmp_path / "asyncapi.json"
    assert write_asyncapi(target, check=True) == 1
    assert write_asyncapi(target) == 0
    assert write_asyncapi(target, check=True) == 0
    target.write_text(target.read_text().replace("alliances.changes.v1", "x"))
    assert write_asyncapi(target, check=True) == 1
    assert "stale" in capsys.readouterr().err


def test_every_topic_and_wire_model_has_a_channel_and_message():
    doc = json.loads(asyncapi.render())
    addresses = {c["address"] for c in doc["channels"].values()}
    defaults = TopicSettings()
    assert {defaults.articles, defaults.partnerships, defaults.changes,
            defaults.state} <= addresses
    # (each model's default topic name: now the registry's address of its topic)
    assert {t.address for t in TOPICS if t.renamable} <= addresses
    assert "{inputTopic}.dlq" in addresses and "{appId}-company-index" in addresses
    assert {m.__name__ for m in WIRE_MODELS} <= set(doc["components"]["messages"])
    dlq = doc["channels"]["deadLetters"]["parameters"]["inputTopic"]["enum"]
    assert {defaults.articles, defaults.partnerships} <= set(dlq)


def test_messages_carry_the_model_schema_and_kafka_key():
    doc = json.loads(asyncapi.render())
    change = doc["components"]["messages"]["AllianceChange"]
    assert change["payload"] == {"$ref": "#/components/schemas/AllianceChange"}
    assert change["bindings"]["kafka"]["key"]["description"] == "alliance_id"
    schema = doc["components"]["schemas"]["AllianceChange"]
    assert {"change_id", "previous_stage", "stage", "evidence"} <= set(schema["properties"])
    state = doc["channels"]["state"]["bindings"]["kafka"]["topicConfiguration"]
    assert state["cleanup.policy"] == ["compact"]
    # every reference resolves inside the document
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node = doc
        for step in ref.split("/"):
            node = node[step]
